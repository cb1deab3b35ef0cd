"""Muennighoff et al. (2023) data-constrained law."""

from __future__ import annotations

import numpy as np
import pytest

from laws import data_constrained
from laws.errors import FitError

#: Muennighoff et al.'s C4 fit as given in their README (log A, log B, log E)
C4 = {
    "E": float(np.exp(0.6254804)),
    "A": float(np.exp(6.255414)),
    "B": float(np.exp(7.3049974)),
    "alpha": 0.3526596,
    "beta": 0.3526596,
    "R_D_star": 15.387756,
    "R_N_star": 5.309743,
}
#: the same constants as rounded in the paper
C4_ROUNDED = {"E": 1.869, "A": 520.8, "B": 1487.7, "alpha": 0.3527, "beta": 0.3527, "R_D_star": 15.39, "R_N_star": 5.31}


def test_readme_worked_example_is_reproduced():
    # README: scaling_law(6.34e9, 242e9, 25e9) -> 2.2256440889984477
    assert data_constrained.predict(C4, 6.34e9, 242e9, 25e9) == pytest.approx(2.2256440889984477, abs=1e-4)


def test_readme_second_model_is_reproduced():
    assert data_constrained.predict(C4, 8.67e9, 178e9, 25e9) == pytest.approx(2.2269634075087867, abs=1e-4)


def test_rounded_paper_constants_agree_to_their_rounding():
    # rounding alpha to 4 digits moves the loss by ~5e-4; the exact constants give 2.22564
    assert data_constrained.predict(C4_ROUNDED, 6.34e9, 242e9, 25e9) == pytest.approx(2.22564, abs=1e-3)


def test_without_repetition_or_excess_parameters_it_is_the_chinchilla_law():
    N, D = 1e8, 1e10  # far fewer parameters than optimal for 1e10 tokens
    chin = C4["E"] + C4["A"] / N ** C4["alpha"] + C4["B"] / D ** C4["beta"]
    assert data_constrained.predict(C4, N, D, D) == pytest.approx(chin, rel=1e-14)


def test_repeated_tokens_are_worth_less_than_fresh_ones():
    fresh = data_constrained.predict(C4, 1e9, 1e11, 1e11)
    repeated = data_constrained.predict(C4, 1e9, 1e11, 1e10)  # 10 epochs
    assert repeated > fresh


def test_readme_optimal_allocation_under_a_data_constraint():
    # README grid search: 8.67e9 params x 178e9 tokens with 25e9 unique tokens is
    # better spent as ~6.8B parameters on ~227B tokens (9.1 epochs)
    a = data_constrained.DATA_CONSTRAINED.allocate(C4, 6 * 8.67e9 * 178e9, unique_tokens=25e9)
    assert a.n_opt == pytest.approx(6.8e9, rel=0.01)
    assert a.d_opt == pytest.approx(227e9, rel=0.01)


def _design():
    rows = []
    for U in (1e8, 1e9, 1e10):
        for N in np.geomspace(1e7, 3e9, 6):
            for epochs in (1, 2, 4, 8, 16, 32, 64):
                rows.append((N, U * epochs, U))
    return map(np.array, zip(*rows))


def test_noise_free_runs_recover_all_seven_parameters():
    truth = {"E": 1.87, "A": 520.8, "B": 1487.7, "alpha": 0.36, "beta": 0.33, "R_D_star": 15.4, "R_N_star": 5.3}
    N, D, U = _design()
    fit = data_constrained.fit(N, D, U, data_constrained.predict(truth, N, D, U))
    for k, v in truth.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-4)


def test_without_repeated_runs_r_star_is_held_and_said_so():
    truth = {**C4}
    N, D, U = _design()
    single = D == U
    L = data_constrained.predict(truth, N[single], D[single], U[single])
    fit = data_constrained.fit(N[single], D[single], U[single], L)
    assert fit.params["R_D_star"] == pytest.approx(data_constrained.PUBLISHED_R_STAR["R_D_star"])
    assert "R_D_star not identifiable" in fit.message


def test_too_few_single_epoch_runs_is_a_fit_error():
    N, D, U = _design()
    L = data_constrained.predict(C4, N, D, U)
    keep = D > U  # every repeated-data run, and only four single-epoch ones
    keep[np.flatnonzero(D == U)[:4]] = True
    with pytest.raises(FitError, match="at least 5 single-epoch runs"):
        data_constrained.fit(N[keep], D[keep], U[keep], L[keep])


def test_an_allocation_under_a_data_limit_takes_one_limit_per_call():
    with pytest.raises(ValueError, match="scalar"):
        data_constrained.DATA_CONSTRAINED.allocate(C4, 1e22, unique_tokens=np.array([1e9, 1e10]))

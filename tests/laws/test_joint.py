"""Joint fits across families with shared parameters."""

from __future__ import annotations

import numpy as np
import pytest

from laws import chinchilla
from laws.joint import fit_joint
from laws_truth import chinchilla_loss, grid_runs

FAMILIES = {
    "web": {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.33, "beta": 0.30},
    "code": {"E": 1.7, "A": 250.0, "B": 3000.0, "alpha": 0.30, "beta": 0.38},
    "books": {"E": 1.7, "A": 600.0, "B": 900.0, "alpha": 0.36, "beta": 0.27},
}


def _datasets(truths, design=grid_runs):
    out = {}
    for name, p in truths.items():
        N, D = design()
        out[name] = {"params": N, "tokens": D, "loss": chinchilla_loss(p, N, D)}
    return out


def test_shared_irreducible_loss_is_recovered_with_per_family_terms():
    r = fit_joint(_datasets(FAMILIES), shared=("E",))
    for fam, truth in FAMILIES.items():
        for k, v in truth.items():
            assert r.params[fam][k] == pytest.approx(v, rel=1e-4)


def test_shared_parameters_take_one_value_across_families():
    r = fit_joint(_datasets(FAMILIES), shared=("E",))
    values = {r.params[f]["E"] for f in FAMILIES}
    assert len(values) == 1
    assert r.shared_params["E"] == values.pop()


def test_shared_exponents_are_recovered():
    truths = {f: {**p, "alpha": 0.34, "beta": 0.28, "E": 1.5 + 0.2 * i} for i, (f, p) in enumerate(FAMILIES.items())}
    r = fit_joint(_datasets(truths), shared=("alpha", "beta"))
    assert r.shared_params["alpha"] == pytest.approx(0.34, rel=1e-4)
    assert r.shared_params["beta"] == pytest.approx(0.28, rel=1e-4)
    for fam, truth in truths.items():
        assert r.params[fam]["E"] == pytest.approx(truth["E"], rel=1e-4)


def test_sharing_identifies_a_family_that_cannot_be_fitted_alone():
    # "small" trained only two model sizes: alone, E, A and alpha cannot be
    # separated (two sizes, three unknowns); with E shared they can.
    truths = {"big": FAMILIES["web"], "small": FAMILIES["code"]}
    data = _datasets(truths)
    two_sizes = np.isin(data["small"]["params"], np.unique(data["small"]["params"])[[1, 4]])
    data["small"] = {k: v[two_sizes] for k, v in data["small"].items()}
    r = fit_joint(data, shared=("E",))
    for k in ("A", "alpha"):
        assert r.params["small"][k] == pytest.approx(truths["small"][k], rel=1e-4)


def test_joint_objective_is_no_worse_than_forcing_one_family_fit_on_all():
    rng = np.random.default_rng(0)
    data = _datasets(FAMILIES)
    for d in data.values():
        d["loss"] = d["loss"] * np.exp(rng.normal(0, 0.01, d["loss"].size))
    r = fit_joint(data, shared=("E",))
    singles = sum(chinchilla.fit(d["params"], d["tokens"], d["loss"]).objective for d in data.values())
    # tying E can only cost objective relative to independent fits, and only a little
    assert singles <= r.objective <= singles * 1.5


def test_unknown_shared_parameter_is_rejected():
    with pytest.raises(ValueError, match="cannot share"):
        fit_joint(_datasets(FAMILIES), shared=("gamma",))


def test_a_single_family_is_rejected():
    with pytest.raises(ValueError, match="two families"):
        fit_joint(_datasets({"web": FAMILIES["web"]}))


def test_one_exponent_shared_by_every_family_is_recovered():
    # Gadre et al.'s form, L = E + A N^-eta + B D^-eta, with one eta across three corpora
    truths = {f: {**p, "alpha": 0.3, "beta": 0.3} for f, p in FAMILIES.items()}
    r = fit_joint(_datasets(truths), shared=("alpha", "beta"), options={"tie_exponents": True})
    assert r.shared_params["alpha"] == r.shared_params["beta"] == pytest.approx(0.3, rel=1e-4)
    for fam, truth in truths.items():
        assert r.params[fam]["B"] == pytest.approx(truth["B"], rel=1e-3)


def test_a_tie_needs_both_exponents_shared_or_neither():
    with pytest.raises(ValueError, match="share both alpha and beta"):
        fit_joint(_datasets(FAMILIES), shared=("alpha",), options={"tie_exponents": True})

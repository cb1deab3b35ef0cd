"""Known truths for the allocation-trust tests (the optimum of a Chinchilla law, sampled families)
and the profile-and-judge step a refit takes, which the tests run on them.

The compute-optimal split is written out from Hoffmann et al. (2022),
Appendix D.2, independently of ``laws``:

    G = (alpha A / (beta B)) ** (1 / (alpha + beta)),
    N_opt = G (C/6) ** (beta / (alpha + beta)),  D_opt = (C/6) ** (alpha / (alpha + beta)) / G.
"""

from __future__ import annotations

import numpy as np

from laws.chinchilla import CHINCHILLA
from laws.profiles import PARAMETERS, profile
from laws.trust import AllocationVerdict, Design, allocation_verdict
from laws_truth import HOFFMANN, chinchilla_loss, grid_runs

#: the budget every "done when" line of issue 9 is stated at
BUDGET = 1e24
#: log-normal scatter of the synthetic runs (0.5%, the scatter of a well-run ladder)
NOISE = 0.005


def optimal_tokens_per_param(truth: dict[str, float], compute: float) -> float:
    al, be = truth["alpha"], truth["beta"]
    G = (al * truth["A"] / (be * truth["B"])) ** (1 / (al + be))
    n_opt = G * (compute / 6) ** (be / (al + be))
    d_opt = (compute / 6) ** (al / (al + be)) / G
    return float(d_opt / n_opt)


def wide_design() -> tuple[np.ndarray, np.ndarray]:
    """7 x 7 runs over 3 decades of N (1e7-1e10) and of D (1e9-1e12); largest run 6e22 FLOPs."""
    return grid_runs(7, 7, (1e7, 1e10), (1e9, 1e12))


def narrow_design() -> tuple[np.ndarray, np.ndarray]:
    """7 x 7 runs over under one decade of N (2e9-1.6e10, a factor 8) and 3 decades of D.

    The largest run is 9.6e22 FLOPs, so 1e24 lies within two decades of it, and
    the true 98 tokens/param at 1e24 lies inside the D/N sampled (0.06-500):
    only identification can fail here.
    """
    return grid_runs(7, 7, (2e9, 1.6e10), (1e9, 1e12))


def noisy_losses(N: np.ndarray, D: np.ndarray, seed: int, truth: dict[str, float] = HOFFMANN) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return chinchilla_loss(truth, N, D) * np.exp(rng.normal(0.0, NOISE, N.size))


def judge(
    N: np.ndarray, D: np.ndarray, L: np.ndarray, params: dict[str, float], options: dict | None = None
) -> AllocationVerdict:
    """What a refit does for the allocation at :data:`BUDGET`: profile E and a around the fit
    ``params`` (made with ``options``) and judge its allocation."""
    profiles = [profile(p, N, D, L, budgets=[BUDGET], options=options, start=params) for p in PARAMETERS]
    tpp = float(CHINCHILLA.allocate(params, BUDGET).tokens_per_param)
    return allocation_verdict(BUDGET, tpp, profiles=profiles, design=Design.of(N, D))

"""Fitting objectives: which residual, and which penalty on it.

Every law predicts ``log L`` (the models are sums of positive terms, so the
log is always defined and a log-sum-exp keeps it stable).  An objective
chooses

* the residual space: ``log L - log L_hat`` (scale free; what Hoffmann et al.
  and Besiroglu et al. use) or ``L - L_hat`` (plain), and
* the penalty: Huber with threshold ``delta`` (robust to the few runs that
  diverge or were mis-read from a plot) or the square.

Penalties are per-run and *summed* over runs (Besiroglu et al.'s code sums;
averaging would change the reported numbers by a factor of n).  The square is
``r**2 / 2`` so that Huber tends to it as ``delta`` grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Objective",
    "OBJECTIVES",
    "get_objective",
    "rho",
    "psi",
    "psi_prime",
    "majorizer_weight",
]


@dataclass(frozen=True)
class Objective:
    """An objective: residual space and penalty.

    Attributes:
        name: catalogue name.
        log_space: residuals are ``log L - log L_hat`` when True, else ``L - L_hat``.
        robust: Huber penalty when True, else squared.
    """

    name: str
    log_space: bool
    robust: bool


OBJECTIVES: dict[str, Objective] = {
    "huber_log": Objective("huber_log", log_space=True, robust=True),
    "least_squares_log": Objective("least_squares_log", log_space=True, robust=False),
    "huber": Objective("huber", log_space=False, robust=True),
    "least_squares": Objective("least_squares", log_space=False, robust=False),
}


def get_objective(name: str | Objective) -> Objective:
    """Look an objective up by name, failing with the list of valid names."""
    if isinstance(name, Objective):
        return name
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(
            f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}"
        ) from None


def rho(r: np.ndarray, delta: float, robust: bool) -> np.ndarray:
    """Per-run penalty: Huber(delta) (as ``scipy.special.huber``) or ``r**2/2``."""
    if not robust:
        return 0.5 * r * r
    a = np.abs(r)
    m = np.minimum(a, delta)
    return m * (a - 0.5 * m)  # = r^2/2 inside the threshold, delta (|r| - delta/2) outside


def psi(r: np.ndarray, delta: float, robust: bool) -> np.ndarray:
    """Derivative of the penalty with respect to the residual."""
    if not robust:
        return r
    return np.clip(r, -delta, delta)


def psi_prime(r: np.ndarray, delta: float, robust: bool) -> np.ndarray:
    """Second derivative of the penalty: 1 inside the Huber threshold, else 0.

    Used for the Newton (not IRLS) curvature: with a tiny ``delta`` only the
    handful of runs the fit passes through carry curvature, which is what
    makes Newton converge in a few steps where IRLS crawls.
    """
    if not robust:
        return np.ones_like(r)
    return (np.abs(r) <= delta).astype(r.dtype)


def majorizer_weight(r: np.ndarray, delta: float, robust: bool) -> np.ndarray:
    """IRLS weight ``psi(r)/r``: the quadratic that majorises Huber at ``r``.

    It is positive for every run, so it gives a well-conditioned fallback
    metric when too few runs sit inside the threshold for Newton's curvature.
    """
    if not robust:
        return np.ones_like(r)
    a = np.abs(r)
    return np.where(a <= delta, 1.0, delta / np.maximum(a, np.finfo(float).tiny))

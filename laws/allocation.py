"""Compute-optimal and inference-aware allocations of N and D.

Training a model of ``N`` parameters on ``D`` tokens costs about
``C = 6 N D`` FLOPs.  For the Chinchilla law the loss-minimising split of a
budget has a closed form (Hoffmann et al. 2022, Appendix D.2):

    N_opt = G (C/6)**(beta/(alpha+beta)),  D_opt = G**-1 (C/6)**(alpha/(alpha+beta)),
    G = (alpha A / (beta B))**(1/(alpha+beta)).

Other laws are minimised numerically over ``log N`` (a bracketing grid then
golden-section search, vectorised over budgets so an array of budgets costs
one pass).  Which rule applies is the law's to say
(:meth:`laws.law.Law.allocate`); this module holds only the arithmetic.  :func:`inference_aware` answers Sardana et al.'s (2023) question:
which model reaches a target loss at the least *lifetime* cost when it will
also serve ``D_inf`` tokens at ``2 N`` FLOPs each.

Parameter dicts may hold arrays (e.g. bootstrap samples shaped ``(B, 1)``);
everything broadcasts, which is how the bootstrap gets intervals for N_opt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from laws.types import Allocation

__all__ = [
    "budgets",
    "as_scalar",
    "allocation_exponents",
    "chinchilla_optimum",
    "minimise_over_log_n",
    "numeric_optimum",
    "as_allocation",
    "inference_aware",
]

#: ``loss(params, N, D)`` of a law, broadcasting over arrays
LossFn = Callable[[Mapping[str, Any], np.ndarray, np.ndarray], np.ndarray]


def budgets(compute: Any) -> np.ndarray:
    """Training budgets as an array, refusing a budget that is not positive."""
    C = np.asarray(compute, float)
    if (C <= 0).any():
        raise ValueError("compute must be positive")
    return C


def as_scalar(x: Any) -> Any:
    """A float for a 0-d value, else the array (results follow the shape asked for)."""
    a = np.asarray(x, dtype=float)
    return float(a) if a.ndim == 0 else a


def allocation_exponents(n_exponent: Any, d_exponent: Any) -> tuple[Any, Any]:
    """``(a, b)`` with ``N_opt ~ C**a``, ``D_opt ~ C**b`` for a loss with terms in ``N**-n_exponent``, ``D**-d_exponent``.

    Minimising such a loss on ``C = k N D`` balances the two terms, which gives
    ``a = d_exponent / (n_exponent + d_exponent)`` and ``b = 1 - a``
    (Chinchilla: ``alpha``, ``beta``; Kaplan: ``alpha_N``, ``alpha_D``).
    """
    x, y = np.asarray(n_exponent, float), np.asarray(d_exponent, float)
    return as_scalar(y / (x + y)), as_scalar(x / (x + y))


def chinchilla_optimum(params: Mapping[str, Any], C: np.ndarray, k: float) -> tuple[Any, Any, Any]:
    """Closed-form ``(N_opt, D_opt, loss)`` of ``E + A/N**alpha + B/D**beta`` on ``C = k N D``."""
    E, A, B = (np.asarray(params[x], float) for x in ("E", "A", "B"))
    al, be = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
    G = (al * A / (be * B)) ** (1.0 / (al + be))
    n = G * (C / k) ** (be / (al + be))
    d = (C / k) ** (al / (al + be)) / G
    return n, d, E + A * n**-al + B * d**-be


def minimise_over_log_n(
    loss: Callable[[Mapping[str, Any], np.ndarray, np.ndarray], np.ndarray],
    params: Mapping[str, Any],
    compute: np.ndarray,
    k: float,
    half_width: float = 23.0,
    n_grid: int = 241,
    n_golden: int = 90,
) -> np.ndarray:
    """``argmin_N loss(params, N, C/(k N))`` for every budget, vectorised.

    ``params`` may hold arrays (e.g. bootstrap draws shaped ``(B, 1)``); the
    result has the broadcast shape of the parameters and ``compute``.  A grid
    over ``log N`` (+-``half_width`` around ``sqrt(C/k)``, i.e. ten decades
    each way) finds the bracket, so a law that is not unimodal far from the
    optimum cannot mislead the golden-section refinement.
    """
    shape = np.broadcast_shapes(np.shape(compute), *(np.shape(v) for v in params.values()))
    C = np.broadcast_to(np.asarray(compute, float), shape)
    on_grid = {name: np.asarray(v, float)[..., None] for name, v in params.items()}
    centre = 0.5 * np.log(C / k)
    offsets = np.linspace(-half_width, half_width, n_grid)
    x = centre[..., None] + offsets  # (..., G)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        vals = loss(on_grid, np.exp(x), C[..., None] / (k * np.exp(x)))
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = np.clip(np.argmin(vals, axis=-1), 1, n_grid - 2)
    step = offsets[1] - offsets[0]
    lo = np.take_along_axis(x, i[..., None], -1)[..., 0] - step
    hi = lo + 2 * step
    g = (np.sqrt(5) - 1) / 2

    def f(xx: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            v = loss(params, np.exp(xx), C / (k * np.exp(xx)))
        return np.where(np.isfinite(v), v, np.inf)

    for _ in range(n_golden):
        c = hi - g * (hi - lo)
        d = lo + g * (hi - lo)
        left = f(c) < f(d)  # the minimum lies in [lo, d], else in [c, hi]
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
    return np.exp(0.5 * (lo + hi))


def numeric_optimum(loss: LossFn, params: Mapping[str, Any], C: np.ndarray, k: float) -> tuple[Any, Any, Any]:
    """``(N_opt, D_opt, loss)`` of a law without a closed form, by :func:`minimise_over_log_n`."""
    n = minimise_over_log_n(loss, params, C, k)
    d = C / (k * n)
    return n, d, loss(params, n, d)


def as_allocation(n: Any, d: Any, loss: Any, flops_per_param_token: float) -> Allocation:
    """The :class:`~laws.types.Allocation` of a compute-optimal ``(N, D)`` (no inference demand)."""
    k = float(flops_per_param_token)
    n, d = np.broadcast_arrays(n, d)
    return Allocation(
        compute=as_scalar(k * n * d),
        n_opt=as_scalar(n),
        d_opt=as_scalar(d),
        tokens_per_param=as_scalar(d / n),
        predicted_loss=as_scalar(loss),
        inference_tokens=0.0,
        total_flops=as_scalar(k * n * d),
    )


def inference_aware(params: Mapping[str, Any], target_loss: Any, inference_tokens: Any, k: float, ki: float) -> Allocation:
    """Cheapest model over its lifetime that reaches ``target_loss`` (Sardana et al. 2023).

    Minimises ``k N D + ki N D_inf`` (training at ``k``, serving at ``ki``
    FLOPs per parameter and token: 6 and 2 for a dense transformer) subject
    to ``L(N, D) = target_loss`` for the Chinchilla law.  On the constraint, ``D`` is a function of ``N``; the
    derivative of the log cost in ``log N`` is increasing, so its single root
    is found by bisection to machine precision (vectorised over arrays of
    targets / inference demands).  With ``D_inf = 0`` the answer is the
    compute-optimal model for the budget that reaches the target; as ``D_inf``
    grows, smaller models trained on more tokens win.  Which laws may use
    this rule is for the law to say (:attr:`laws.law.Law.inference_aware`).
    """
    E, A, B = (float(params[x]) for x in ("E", "A", "B"))
    al, be = float(params["alpha"]), float(params["beta"])
    T, Dinf = np.broadcast_arrays(np.asarray(target_loss, float), np.asarray(inference_tokens, float))
    if (T <= E).any():
        raise ValueError(f"target_loss must exceed the irreducible loss E = {E}")
    if (Dinf < 0).any():
        raise ValueError("inference_tokens must be >= 0")
    k, ki = float(k), float(ki)
    gap = T - E
    u_min = np.log(A / gap) / al  # log N at which the A-term alone uses the gap

    def tokens(t: np.ndarray) -> np.ndarray:
        # D on the constraint when log N = u_min + t:  B / D**beta = gap (1 - e^{-alpha t})
        return (B / (gap * -np.expm1(-al * t))) ** (1.0 / be)

    def slope(t: np.ndarray) -> np.ndarray:
        a_over_rest = np.exp(-al * t) / -np.expm1(-al * t)
        Dt = tokens(t)
        share = k * Dt / (k * Dt + ki * Dinf)
        return 1.0 - share * (al / be) * a_over_rest

    lo = np.zeros_like(T)
    hi = np.full_like(T, 60.0 / al)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        pos = slope(mid) > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
    t = 0.5 * (lo + hi)
    n = np.exp(u_min + t)
    d = tokens(t)
    train = k * n * d
    return Allocation(
        compute=as_scalar(train),
        n_opt=as_scalar(n),
        d_opt=as_scalar(d),
        tokens_per_param=as_scalar(d / n),
        predicted_loss=as_scalar(E + A * n**-al + B * d**-be),
        inference_tokens=as_scalar(Dinf),
        total_flops=as_scalar(train + ki * n * Dinf),
    )

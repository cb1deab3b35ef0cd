"""Compute-optimal and inference-aware allocations of N and D.

Training a model of ``N`` parameters on ``D`` tokens costs about
``C = 6 N D`` FLOPs.  For the Chinchilla law the loss-minimising split of a
budget has a closed form (Hoffmann et al. 2022, Appendix D.2):

    N_opt = G (C/6)**(beta/(alpha+beta)),  D_opt = G**-1 (C/6)**(alpha/(alpha+beta)),
    G = (alpha A / (beta B))**(1/(alpha+beta)).

Other laws are minimised numerically over ``log N`` (a bracketing grid then
golden-section search, vectorised over budgets so an array of budgets costs
one pass).  :func:`inference_aware` answers Sardana et al.'s (2023) question:
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

__all__ = ["law_of", "exponents", "compute_optimal", "inference_aware"]

_KEYS = {
    "data_constrained": {"E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star"},
    "chinchilla": {"E", "A", "B", "alpha", "beta"},
    "kaplan": {"N_c", "D_c", "alpha_N", "alpha_D"},
    "isoflop": {"a", "k_n", "b", "k_d"},
}


def law_of(params: Mapping[str, Any]) -> str:
    """Name the law a parameter dict belongs to, from its keys."""
    keys = set(params)
    for name, required in _KEYS.items():
        if required <= keys:
            return name
    raise ValueError(
        f"cannot tell which law parameters {sorted(keys)} belong to; "
        f"expected the keys of one of {sorted(_KEYS)}"
    )


def _scalarise(x: Any) -> Any:
    a = np.asarray(x, dtype=float)
    return float(a) if a.ndim == 0 else a


def exponents(params: Mapping[str, Any]) -> tuple[Any, Any]:
    """Allocation exponents ``(a, b)`` with ``N_opt ~ C**a`` and ``D_opt ~ C**b``.

    Chinchilla-form laws: ``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)``
    (for the data-constrained law, in the unconstrained-data limit).  Kaplan:
    ``a = alpha_D/(alpha_N+alpha_D)``, ``b = alpha_N/(alpha_N+alpha_D)``.
    Approach 2 fits ``a`` and ``b`` directly.
    """
    law = law_of(params)
    if law in ("chinchilla", "data_constrained"):
        al, be = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
        return _scalarise(be / (al + be)), _scalarise(al / (al + be))
    if law == "kaplan":
        an, ad = np.asarray(params["alpha_N"], float), np.asarray(params["alpha_D"], float)
        return _scalarise(ad / (an + ad)), _scalarise(an / (an + ad))
    return _scalarise(params["a"]), _scalarise(params["b"])


def _minimise_over_log_n(
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


def compute_optimal(
    params: Mapping[str, Any],
    compute: Any,
    flops_per_param_token: float = 6.0,
    *,
    law: str | None = None,
    unique_tokens: Any = None,
) -> Allocation:
    """Loss-minimising ``(N, D)`` for a training budget (scalar or array).

    Args:
        params: fitted parameters of a law (the law is inferred from the keys
            unless ``law`` is given).
        compute: training FLOPs, scalar or array.
        flops_per_param_token: FLOPs per parameter per token (6 for a dense
            transformer forward+backward pass).
        law: force the law ("chinchilla", "kaplan", "data_constrained", "isoflop").
        unique_tokens: for the data-constrained law, the unique tokens
            available, a scalar (None means unlimited data, i.e. the
            Chinchilla answer).
    """
    law = law or law_of(params)
    C = np.asarray(compute, float)
    if (C <= 0).any():
        raise ValueError("compute must be positive")
    k = float(flops_per_param_token)
    if law == "isoflop":
        n = params["k_n"] * C ** params["a"]
        d = params["k_d"] * C ** params["b"]
        loss = np.full(np.broadcast(n, d).shape, np.nan)
    elif law == "chinchilla" or (law == "data_constrained" and unique_tokens is None):
        E, A, B = (np.asarray(params[x], float) for x in ("E", "A", "B"))
        al, be = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
        G = (al * A / (be * B)) ** (1.0 / (al + be))
        n = G * (C / k) ** (be / (al + be))
        d = (C / k) ** (al / (al + be)) / G
        loss = E + A * n**-al + B * d**-be
    elif law == "kaplan":
        from laws import kaplan

        n = _minimise_over_log_n(kaplan.predict, params, C, k)
        d = C / (k * n)
        loss = kaplan.predict(params, n, d)
    elif law == "data_constrained":
        from laws import data_constrained

        if np.ndim(unique_tokens) != 0:
            raise ValueError("unique_tokens must be a scalar (one data budget per call)")
        U = float(unique_tokens)

        def f(p: Mapping[str, Any], N: np.ndarray, D: np.ndarray) -> np.ndarray:
            return data_constrained.predict(p, N, D, np.minimum(U, D))

        n = _minimise_over_log_n(f, params, C, k)
        d = C / (k * n)
        loss = data_constrained.predict(params, n, d, np.minimum(U, d))
    else:
        raise ValueError(f"no allocation rule for law {law!r}")
    n, d = np.broadcast_arrays(n, d)
    return Allocation(
        compute=_scalarise(k * n * d),
        n_opt=_scalarise(n),
        d_opt=_scalarise(d),
        tokens_per_param=_scalarise(d / n),
        predicted_loss=_scalarise(loss),
        inference_tokens=0.0,
        total_flops=_scalarise(k * n * d),
    )


def inference_aware(
    params: Mapping[str, Any],
    target_loss: Any,
    inference_tokens: Any,
    flops_per_param_token: float = 6.0,
    inference_flops_per_param_token: float = 2.0,
) -> Allocation:
    """Cheapest model over its lifetime that reaches ``target_loss`` (Sardana et al. 2023).

    Minimises ``6 N D + 2 N D_inf`` subject to ``L(N, D) = target_loss`` for
    the Chinchilla law.  On the constraint, ``D`` is a function of ``N``; the
    derivative of the log cost in ``log N`` is increasing, so its single root
    is found by bisection to machine precision (vectorised over arrays of
    targets / inference demands).  With ``D_inf = 0`` the answer is the
    compute-optimal model for the budget that reaches the target; as ``D_inf``
    grows, smaller models trained on more tokens win.
    """
    if law_of(params) not in ("chinchilla", "data_constrained"):
        raise ValueError("inference-aware allocation needs Chinchilla-form parameters (E, A, B, alpha, beta)")
    E, A, B = (float(params[x]) for x in ("E", "A", "B"))
    al, be = float(params["alpha"]), float(params["beta"])
    T, Dinf = np.broadcast_arrays(np.asarray(target_loss, float), np.asarray(inference_tokens, float))
    if (T <= E).any():
        raise ValueError(f"target_loss must exceed the irreducible loss E = {E}")
    if (Dinf < 0).any():
        raise ValueError("inference_tokens must be >= 0")
    k, ki = float(flops_per_param_token), float(inference_flops_per_param_token)
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
        compute=_scalarise(train),
        n_opt=_scalarise(n),
        d_opt=_scalarise(d),
        tokens_per_param=_scalarise(d / n),
        predicted_loss=_scalarise(E + A * n**-al + B * d**-be),
        inference_tokens=_scalarise(Dinf),
        total_flops=_scalarise(train + ki * n * Dinf),
    )

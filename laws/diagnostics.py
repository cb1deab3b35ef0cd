"""Identifiability diagnostics from a bootstrap.

A fit can reach a low objective while some parameters are not determined by
the data: with too narrow a range of model sizes ``E`` and ``A/N**alpha``
trade off; with a single tokens-per-parameter ratio ``alpha`` and ``beta``
trade off.  The bootstrap shows this directly -- the resampled estimates of
confounded parameters move together (|correlation| near 1) or spread over
orders of magnitude.  These flags tell a registry user not to trust, say, an
extrapolated ``E`` before anyone reads the number.

``A`` and ``B`` are the terms' values at ``N = 1`` and ``D = 1``, far outside
any data, so they always move with their exponents (|corr(A, alpha)| is ~0.999
on the Chinchilla points); those pairs are reported but do not by themselves
make a fit unidentifiable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from laws.bootstrap import BootstrapResult

__all__ = ["identifiability"]


def identifiability(
    bootstrap_result: BootstrapResult,
    threshold: float = 0.95,
    max_log10_width: float = 1.0,
) -> dict[str, Any]:
    """Flag confounded or undetermined parameters.

    Args:
        bootstrap_result: output of :func:`laws.bootstrap.bootstrap`.
        threshold: |Spearman correlation| above which two parameters are
            called confounded.
        max_log10_width: an interval is *degenerate* when it is not finite,
            has collapsed to a point although the resamples vary (most of them
            sit on a bound), or -- for the irreducible loss ``E`` -- spans
            more than this many decades (``E`` drifting towards 0).

    Returns:
        ``correlation`` (Spearman matrix), ``param_names``, ``confounded_pairs``
        (list of ``(p, q, corr)``), ``degenerate`` (names), per-parameter
        ``log10_width``, the pair flags ``alpha_beta_confounded``,
        ``A_E_confounded``, ``B_E_confounded``, ``A_alpha_confounded``,
        ``B_beta_confounded`` (when those parameters exist; ``alpha_beta``
        is also set when the fit's design correlates log N with log D beyond
        ``threshold``: ``design_confounded``, with ``log_design_correlation``), and
        ``identifiable``: nothing degenerate and no confounded pair other than
        the scale/exponent pairs ``(A, alpha)`` and ``(B, beta)``.
    """
    names = list(bootstrap_result.param_names)
    corr = np.asarray(bootstrap_result.correlation, float)
    samples = bootstrap_result.samples.values
    pairs, tied = [], set()
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if np.array_equal(samples[:, i], samples[:, j], equal_nan=True):
                tied.add(frozenset((names[i], names[j])))  # one parameter twice (a shared exponent), not a confound
                continue
            c = corr[i, j]
            if np.isfinite(c) and abs(c) > threshold:
                pairs.append((names[i], names[j], float(c)))

    degenerate = []
    widths: dict[str, float] = {}
    for i, name in enumerate(names):
        lo, hi = bootstrap_result.ci[name]
        col = samples[:, i]
        col = col[np.isfinite(col)]
        varied = col.size > 1 and np.ptp(col) > 0
        width = np.nan
        if np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi > 0:
            width = float(np.log10(hi / lo))
        widths[name] = width
        if not (np.isfinite(lo) and np.isfinite(hi)):
            degenerate.append(name)
        elif varied and hi == lo:
            degenerate.append(name)
        elif name == "E" and np.isfinite(width) and width > max_log10_width:
            degenerate.append(name)

    confounded = {frozenset((p, q)) for p, q, _ in pairs}

    def flag(p: str, q: str) -> bool:
        return frozenset((p, q)) in confounded or p in degenerate or q in degenerate

    out: dict[str, Any] = {
        "param_names": names,
        "correlation": corr,
        "threshold": threshold,
        "confounded_pairs": pairs,
        "degenerate": degenerate,
        "log10_width": widths,
    }
    for p, q in (("alpha", "beta"), ("A", "E"), ("B", "E"), ("A", "alpha"), ("B", "beta")):
        if p in names and q in names:
            out[f"{p}_{q}_confounded"] = flag(p, q)
    # A design whose N and D move together cannot separate alpha from beta even
    # when the resampled estimates happen not to correlate (the two terms can
    # swap roles between resamples).
    design = bootstrap_result.fit.extras.get("log_design_correlation")
    out["log_design_correlation"] = design
    out["design_confounded"] = bool(design is not None and abs(design) > threshold)
    if out["design_confounded"] and "alpha_beta_confounded" in out and frozenset(("alpha", "beta")) not in tied:
        out["alpha_beta_confounded"] = True
    benign = {frozenset(("A", "alpha")), frozenset(("B", "beta"))}
    out["identifiable"] = (
        not degenerate
        and all(frozenset((p, q)) in benign for p, q, _ in pairs)
        and not out["design_confounded"]
    )
    return out

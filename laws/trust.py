"""Whether a published allocation can be trusted: the verdict as pure logic.

A fit publishes two claims: the loss law (gated elsewhere) and the
compute-optimal allocation.  A law can predict every observed loss well while
its allocation far above the runs is undetermined, so the allocation gets its
own verdict per budget, one of

``unidentified``
    a profile of the objective (:mod:`laws.profiles`) stays within the
    tolerance of its minimum over a range in which tokens per parameter at
    this budget lies more than the factor away from the fit's own answer
    (``max(hi / estimate, estimate / lo)``): an equally good fit gives an
    answer that far from the published number, so the runs do not decide it,
    even where they are.  A law with no loss surface to profile (Approach 1
    and 2 regress the optimum on compute directly) is judged the same way on
    its bootstrap interval of tokens per parameter.  Also unidentified when
    neither was checked, or the fit gives no finite allocation.
``approaches_disagree``
    two or more approaches the runs support (Approach 1, 2, 3) give tokens
    per parameter that differ by more than the disagreement factor: the
    answer depends on the method (for example on how checkpoints of an
    un-annealed run are read).
``extrapolated``
    the budget lies more than ``max_decades_above`` decades above the
    largest compute in the family, or the recommended tokens per parameter
    lies outside the range of D/N the runs sampled.
``trusted``
    none of the above.

Precedence, when several apply: unidentified > approaches_disagree >
extrapolated > trusted.  An unidentified allocation is undetermined by the
data themselves, so nothing else about it is worth reading first; a
disagreement between approaches is concrete evidence that the number is
wrong, stronger than distance alone; extrapolation says only that the number
was not tested where it is used.  Every failed check is kept (``findings``)
and the reason lists them, most serious first, each with the figures behind
it and what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from laws.profiles import PARAMETERS, Profile, ProfileCheck, spread_around

__all__ = [
    "Status",
    "PRECEDENCE",
    "TrustSettings",
    "Design",
    "Finding",
    "AllocationVerdict",
    "allocation_verdict",
    "allocation_verdicts",
]

Status = Literal["unidentified", "approaches_disagree", "extrapolated", "trusted"]
#: most serious first
PRECEDENCE: tuple[str, ...] = ("unidentified", "approaches_disagree", "extrapolated", "trusted")

#: what to do when a profile shows the allocation undetermined
_REMEDY = {
    "E": "add runs at larger N or fix E",
    "a": "add runs over a wider range of N and of D/N, or share the exponents (alpha = beta)",
}
_NAME = {"E": "E", "a": "the allocation exponent a"}


#: half the 95% quantile of chi-squared with one degree of freedom: a profile likelihood's 95% region
LIKELIHOOD_RATIO_95 = 1.920729


@dataclass(frozen=True)
class TrustSettings:
    """Thresholds of the allocation verdict (part of a fit's version).

    Attributes:
        tolerance: relative objective excess over the best fit that counts as
            "fits as well" on a profile (0.01 = 1%).
        factor: an allocation is unidentified when, within the tolerance,
            tokens per parameter lies more than this factor from the fit's
            own answer.
        max_decades_above: budgets more than this many decades above the
            family's largest compute are extrapolated.
        disagreement_factor: approaches disagree when their tokens per
            parameter differ by more than this factor.
        calibrated: widen ``tolerance`` to the likelihood-ratio bound for
            the number of independent runs (:meth:`tolerance_for`).
        gating_profiles: the profiled parameters whose check can make an
            allocation unidentified; checks of other profiles are reported
            (``profile_checks``) but do not gate.  The ``a`` profile's
            within-tolerance range is close to a confidence interval of the
            allocation exponent, while the ``E`` profile catches the
            degeneracy between E and A/N**alpha that a narrow range of sizes
            creates.
    """

    tolerance: float = 0.01
    factor: float = 2.0
    max_decades_above: float = 2.0
    disagreement_factor: float = 2.0
    gating_profiles: tuple[str, ...] = ("E", "a")
    calibrated: bool = True

    def tolerance_for(self, n_independent: int) -> float:
        """The profile tolerance for a fit on ``n_independent`` runs: ``tolerance``, widened to the
        likelihood-ratio bound where the runs are few.

        A fixed relative tolerance is a confidence region only for one number of runs: the
        objective's statistical noise is about ``objective / n``.  Under the Laplace error model
        that the Huber objective on log loss approximates (residuals beyond its small delta), the
        95% profile-likelihood region is an objective excess of ``chi2_1(0.95) / 2 = 1.92`` times
        ``objective / n``, so a family of 30 runs gets 6.4% and Chinchilla's 240 runs keep 1%.
        """
        if not self.calibrated or n_independent <= 0:
            return self.tolerance
        return max(self.tolerance, LIKELIHOOD_RATIO_95 / n_independent)

    def __post_init__(self) -> None:
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if not (self.factor >= 1 and self.disagreement_factor >= 1):
            raise ValueError("factor and disagreement_factor must be >= 1")
        if not self.max_decades_above >= 0:
            raise ValueError(f"max_decades_above must be >= 0, got {self.max_decades_above}")
        unknown = set(self.gating_profiles) - set(PARAMETERS)
        if unknown:
            raise ValueError(f"unknown profiled parameter(s) {sorted(unknown)}; profiles exist for {list(PARAMETERS)}")


@dataclass(frozen=True)
class Design:
    """What a family's runs sampled, for the extrapolation checks.

    Attributes:
        max_compute: the largest training compute observed (FLOPs).
        tokens_per_param_range: lowest and highest D/N sampled.
        n_independent: independent runs behind the fit (0: unknown).
    """

    max_compute: float
    tokens_per_param_range: tuple[float, float]
    n_independent: int = 0

    @classmethod
    def of(cls, N: Any, D: Any, flops_per_param_token: float = 6.0, groups: Any = None) -> Design:
        """The design of the observations ``(N, D)`` a fit used; ``groups`` names each observation's
        run where a run gave several (checkpoints), so the runs, not the points, count as independent."""
        N, D = np.asarray(N, float), np.asarray(D, float)
        ratio = D / N
        n = int(np.unique(np.asarray(groups)).size) if groups is not None else int(N.size)
        return cls(
            max_compute=float((flops_per_param_token * N * D).max()),
            tokens_per_param_range=(float(ratio.min()), float(ratio.max())),
            n_independent=n,
        )


@dataclass(frozen=True)
class Finding:
    """One failed check: which status it implies and why, in words."""

    status: Status
    reason: str


@dataclass(frozen=True)
class AllocationVerdict:
    """The trust verdict on the allocation at one budget.

    Attributes:
        budget: training FLOPs.
        tokens_per_param: the fit's recommended tokens per parameter.
        status: the most serious finding's status, or "trusted".
        reason: every finding, most serious first (or why it is trusted).
        findings: the failed checks, most serious first.
        profile_checks: the profile figures behind the verdict.
    """

    budget: float
    tokens_per_param: float
    status: Status
    reason: str
    findings: tuple[Finding, ...] = ()
    profile_checks: tuple[ProfileCheck, ...] = ()


def _g(x: float, digits: int = 2) -> str:
    """A number as a person would write it: ``digits`` significant digits, plain when modest."""
    if not np.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-2):
        return f"{x:.{digits}g}"
    return f"{float(f'{x:.{digits}g}'):g}"


def _percent(checks: Sequence[ProfileCheck], settings: TrustSettings) -> str:
    tolerance = checks[0].tolerance if checks else settings.tolerance
    return f"{100 * tolerance:.2g}%"


def _profile_findings(checks: Sequence[ProfileCheck], settings: TrustSettings) -> list[Finding]:
    out = []
    pct = _percent(checks, settings)
    for c in checks:
        if c.identified or c.parameter not in settings.gating_profiles:
            continue
        lo, hi = c.value_range
        t_lo, t_hi = c.tokens_per_param_range
        if not (np.isfinite(t_lo) and np.isfinite(t_hi)):
            out.append(
                Finding(
                    "unidentified",
                    f"{_NAME[c.parameter]} is not identified: no fit on its profile within {pct} of the best "
                    f"objective gives a finite allocation at {c.budget:.0e}; {_REMEDY[c.parameter]}",
                )
            )
            continue
        edge = " (and further: the range reaches the end of the profile)" if c.at_grid_edge else ""
        out.append(
            Finding(
                "unidentified",
                f"{_NAME[c.parameter]} is not identified: fixing {c.parameter} anywhere in {_g(lo, 3)}-{_g(hi, 3)}{edge} "
                f"changes the objective by <{pct} while tokens/param at {c.budget:.0e} moves "
                f"{_g(t_lo)}-{_g(t_hi)}, up to x{_g(c.spread)} from the fit's {_g(c.estimate)} "
                f"(limit x{_g(settings.factor)}); {_REMEDY[c.parameter]}",
            )
        )
    return out


def _interval_findings(
    budget: float, tokens_per_param: float, interval: tuple[float, float], settings: TrustSettings
) -> list[Finding]:
    spread = spread_around(tokens_per_param, interval)
    if spread <= settings.factor:
        return []
    lo, hi = interval
    return [
        Finding(
            "unidentified",
            f"the bootstrap interval of tokens/param at {budget:.0e} ({_g(lo)}-{_g(hi)}) reaches x{_g(spread)} from the "
            f"fit's {_g(tokens_per_param)} (limit x{_g(settings.factor)}): the runs do not pin the optimum down; add runs "
            "(more sizes per budget, more budgets) near it",
        )
    ]


def _disagreement(
    budget: float, own_name: str, tokens_per_param: float, approaches: Mapping[str, float], settings: TrustSettings
) -> list[Finding]:
    values = {own_name: tokens_per_param, **{k: float(v) for k, v in approaches.items()}}
    values = {k: v for k, v in values.items() if np.isfinite(v) and v > 0}
    if len(values) < 2:
        return []
    lo_name = min(values, key=values.__getitem__)
    hi_name = max(values, key=values.__getitem__)
    ratio = values[hi_name] / values[lo_name]
    if ratio <= settings.disagreement_factor:
        return []
    listing = ", ".join(f"{k} gives {_g(v)}" for k, v in values.items())
    return [
        Finding(
            "approaches_disagree",
            f"approaches disagree at {budget:.0e}: {listing} tokens/param (factor {_g(ratio)} > "
            f"{_g(settings.disagreement_factor)}); find out which approach the runs mislead (e.g. add a cooldown "
            "to checkpointed runs) before using either",
        )
    ]


def _extrapolation(budget: float, tokens_per_param: float, design: Design, settings: TrustSettings) -> list[Finding]:
    out = []
    decades = float(np.log10(budget / design.max_compute))
    if decades > settings.max_decades_above:
        out.append(
            Finding(
                "extrapolated",
                f"{budget:.0e} FLOPs is {decades:.1f} decades above the largest run ({design.max_compute:.1e} FLOPs; "
                f"limit {_g(settings.max_decades_above)}); add runs at larger compute",
            )
        )
    lo, hi = design.tokens_per_param_range
    if not lo <= tokens_per_param <= hi:
        out.append(
            Finding(
                "extrapolated",
                f"the recommended {_g(tokens_per_param)} tokens/param lies outside the D/N sampled "
                f"({_g(lo)}-{_g(hi)}); add runs near that ratio",
            )
        )
    return out


def _trusted_reason(
    budget: float, tokens_per_param: float, checks: Sequence[ProfileCheck], design: Design, n_approaches: int,
    settings: TrustSettings, interval: tuple[float, float] | None,
) -> str:
    pct = _percent(checks, settings)

    def spreads(cs: Sequence[ProfileCheck]) -> str:
        return ", ".join(f"{c.parameter}: {_g(c.tokens_per_param_range[0])}-{_g(c.tokens_per_param_range[1])}" for c in cs)

    gating = [c for c in checks if c.parameter in settings.gating_profiles]
    others = [c for c in checks if c.parameter not in settings.gating_profiles]
    shown = f"; not gating: {spreads(others)}" if others else ""
    if gating:
        pinned = (
            f"within {pct} of the best objective, tokens/param at {budget:.0e} stays within "
            f"{_g(settings.factor)}x of the fit's {_g(tokens_per_param)} ({spreads(gating)}{shown})"
        )
    else:
        lo, hi = interval or (np.nan, np.nan)
        pinned = (
            f"the bootstrap interval of tokens/param at {budget:.0e} ({_g(lo)}-{_g(hi)}) stays within "
            f"{_g(settings.factor)}x of the fit's {_g(tokens_per_param)}{shown}"
        )
    decades = float(np.log10(budget / design.max_compute))
    agree = f"; {n_approaches} approaches agree within {_g(settings.disagreement_factor)}x" if n_approaches > 1 else ""
    return (
        f"identified: {pinned}; {_g(tokens_per_param)} tokens/param lies inside the "
        f"D/N sampled and {budget:.0e} is {decades:.1f} decades from the largest run{agree}"
    )


def allocation_verdict(
    budget: float,
    tokens_per_param: float,
    *,
    profiles: Sequence[Profile],
    design: Design,
    approaches: Mapping[str, float] | None = None,
    own_name: str = "Approach 3",
    settings: TrustSettings | None = None,
    interval: tuple[float, float] | None = None,
) -> AllocationVerdict:
    """The verdict on the allocation at one budget.

    Args:
        budget: training FLOPs (one of the profiles' budgets).
        tokens_per_param: the fit's recommended tokens per parameter there.
        profiles: the fit's profiles (e.g. over E and a); without a profile
            that gates (``settings.gating_profiles``) identification is read
            off ``interval``, and without that it was not checked, which is
            never trusted.
        design: what the family's runs sampled.
        approaches: tokens per parameter at ``budget`` from the other
            approaches the runs support, by name (e.g. ``{"Approach 1": 110.0}``);
            non-finite values are ignored.
        own_name: the fit's approach, as named in reasons.
        settings: thresholds (defaults: :class:`TrustSettings`).
        interval: the bootstrap interval of tokens per parameter at ``budget``,
            for a law without a loss surface to profile (Approach 1 and 2).
    """
    settings = settings or TrustSettings()
    budget, tpp = float(budget), float(tokens_per_param)
    checks = tuple(
        p.check(budget, tolerance=settings.tolerance_for(design.n_independent), factor=settings.factor, estimate=tpp)
        for p in profiles
    )
    findings: list[Finding] = []
    if not (np.isfinite(tpp) and tpp > 0):
        findings.append(Finding("unidentified", f"the fit gives no finite allocation at {budget:.0e}"))
    gated = any(c.parameter in settings.gating_profiles for c in checks)
    if not gated and interval is not None:
        findings += _interval_findings(budget, tpp, interval, settings)
    elif not gated:
        findings.append(
            Finding("unidentified", "identification was not checked (no profile of the objective for this fit)")
        )
    findings += _profile_findings(checks, settings)
    others = dict(approaches or {})
    findings += _disagreement(budget, own_name, tpp, others, settings)
    findings += _extrapolation(budget, tpp, design, settings)
    findings.sort(key=lambda f: PRECEDENCE.index(f.status))
    status: Status
    if findings:
        status = findings[0].status
        reason = "; also ".join(f.reason for f in findings)
    else:
        status = "trusted"
        n_approaches = 1 + sum(1 for v in others.values() if np.isfinite(v) and v > 0)
        reason = _trusted_reason(budget, tpp, checks, design, n_approaches, settings, None if gated else interval)
    return AllocationVerdict(
        budget=budget, tokens_per_param=tpp, status=status, reason=reason, findings=tuple(findings),
        profile_checks=checks,
    )


def allocation_verdicts(
    budgets: Sequence[float],
    tokens_per_param: Sequence[float],
    *,
    profiles: Sequence[Profile],
    design: Design,
    approaches: Mapping[str, Sequence[float]] | None = None,
    own_name: str = "Approach 3",
    settings: TrustSettings | None = None,
    intervals: tuple[Sequence[float], Sequence[float]] | None = None,
) -> tuple[AllocationVerdict, ...]:
    """:func:`allocation_verdict` for every budget; ``approaches`` maps a name to one value per budget and
    ``intervals`` is ``(lo, hi)``, one value each per budget."""
    budgets = np.atleast_1d(np.asarray(budgets, float))
    tpp = np.atleast_1d(np.asarray(tokens_per_param, float))
    if tpp.shape != budgets.shape:
        raise ValueError(f"{tpp.size} tokens_per_param values for {budgets.size} budgets")
    others = {k: np.atleast_1d(np.asarray(v, float)) for k, v in (approaches or {}).items()}
    for k, v in others.items():
        if v.shape != budgets.shape:
            raise ValueError(f"approach {k!r} has {v.size} values for {budgets.size} budgets")
    bounds = None if intervals is None else [np.broadcast_to(np.asarray(x, float), budgets.shape) for x in intervals]
    return tuple(
        allocation_verdict(
            b, t, profiles=profiles, design=design, approaches={k: float(v[i]) for k, v in others.items()},
            own_name=own_name, settings=settings,
            interval=None if bounds is None else (float(bounds[0][i]), float(bounds[1][i])),
        )
        for i, (b, t) in enumerate(zip(budgets, tpp))
    )

"""Fit a law to a table of runs on disk: the I/O shell around :mod:`laws`.

``scalereg fit`` is wired to :func:`fit_file`, and with ``--family-column`` to :func:`fit_file_joint`
(several families with shared parameters).  The file is read by the same reader as
``scalereg ingest`` (:func:`registry.adapters.mapping.read_with_mapping`: CSV, Parquet or JSONL,
the size, pickle and encoding checks, and a TOML mapping for files that name their columns their
own way), so a file that fits also ingests and the other way round.  Fitting lives in
:mod:`laws`, so this module stays a thin, dagster-free adapter.

Without a mapping the file is in the generic format (``params``, ``tokens`` or ``flops``,
``loss``, optionally ``unique_tokens``); the published Chinchilla export is read with its
shipped mapping, ``data/published/chinchilla/mapping.toml``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from laws.bootstrap import bootstrap as bootstrap_law
from laws.catalog import get_law
from laws.chinchilla import CHINCHILLA
from laws.intervals import DEFAULT_LEVEL
from laws.joint import bootstrap_joint, fit_joint
from registry.adapters.base import FileProblem
from registry.adapters.mapping import load_mapping, read_with_mapping

__all__ = ["read_fit_table", "fit_file", "fit_file_joint"]

REQUIRED = ("params", "tokens", "loss")
OPTIONAL = ("unique_tokens", "flops")
#: the family the reader stamps on the rows: a fitted file is one family, whatever it says
FILE_FAMILY = "file"


def read_fit_table(
    path: str | Path, mapping: str | Path | None = None, family_column: str | None = None
) -> dict[str, np.ndarray]:
    """Read a runs table into the column arrays the laws take.

    Args:
        path: a ``.csv``, ``.tsv``, ``.parquet`` or ``.jsonl`` file.
        mapping: a TOML mapping of the file's columns (None: the generic format).
        family_column: a column naming each row's family, for a joint fit (None: one family).

    Returns:
        ``{"params", "tokens", "loss", and "unique_tokens", "flops" where every row has them}``
        as float arrays; ``tokens`` is ``flops / (6 params)`` where the file gives only compute.
        With ``family_column``, ``"family"`` holds each row's family as text.

    Raises:
        FileProblem: naming the file (and the mapping line) and how to fix it: an unreadable or
            refused file, missing columns, a value that is not a number, an empty required value,
            or per-step curves.
    """
    path = Path(path)
    if mapping is None:
        batch = read_with_mapping(path, family=FILE_FAMILY)
    else:
        batch = read_with_mapping(path, load_mapping(Path(mapping)), family=FILE_FAMILY)
    if batch.parse_errors.height:
        row, reason = batch.parse_errors.row(0)
        raise FileProblem(f"{path.name}: row {row}: {reason} ({batch.parse_errors.height} value(s) unreadable)")
    points = batch.points
    if points.get_column("step").is_not_null().any():
        raise FileProblem(
            f"{path.name}: has per-step curves (a 'step' column); 'scalereg fit' takes one row per run. "
            "Keep each run's final row, or ingest the file and use 'scalereg refit'."
        )
    out = {}
    for name in REQUIRED:
        values = points.get_column(name).cast(pl.Float64)
        if values.null_count():
            raise FileProblem(f"{path.name}: column {name!r} has {values.null_count()} empty value(s); fill or drop those rows")
        out[name] = values.to_numpy()
    for name in OPTIONAL:
        values = points.get_column(name).cast(pl.Float64)
        if not values.null_count():
            out[name] = values.to_numpy()
    if family_column is not None:
        out["family"] = _families(path, points, family_column)
    return out


def _families(path: Path, points: pl.DataFrame, column: str) -> np.ndarray:
    """Each row's value of ``column``: the reader keeps columns it does not map in ``tags``."""
    values = [json.loads(tags or "{}").get(column) for tags in points.get_column("tags").to_list()]
    empty = sum(value is None or str(value).strip() == "" for value in values)
    if empty == len(values):
        raise FileProblem(f"{path.name}: no column {column!r} to read the families from; name the column with --family-column")
    if empty:
        raise FileProblem(f"{path.name}: column {column!r} is empty in {empty} row(s); every run needs its family")
    return np.array([str(value) for value in values], dtype=object)


def fit_file_joint(
    path: str | Path,
    law: str = "chinchilla",
    *,
    family_column: str,
    shared: Sequence[str],
    mapping: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """Fit ``law`` jointly to the families in ``path`` with the ``shared`` parameters tied (:mod:`laws.joint`).

    Args:
        path, mapping: the file and, for a file in its own layout, its TOML mapping.
        law: the law (joint fits take the Chinchilla law).
        family_column: the column naming each run's family.
        shared: the parameters that take one value across the families, e.g. ``("E",)``.
        options: Chinchilla fit options applied to every family.
        bootstrap: resamples for intervals, drawn within each family (0: none).
        seed, level: the bootstrap's seed and interval coverage.

    Returns:
        ``{"law", "shared", "shared_params", "families": {name: {"params", "ci", "n_runs"}},
        "objective", "converged", "seconds"}``; ``ci`` is ``{name: [lo, hi]}`` with a bootstrap,
        else empty. ``seconds`` times the fit and bootstrap, not the file read.

    Raises:
        FileProblem: the file cannot be read or lacks the family column.
        ValueError: a law other than Chinchilla, an unknown parameter or option, or fewer than two families.
        laws.errors.FitError: a family's runs cannot support the fit.
    """
    if get_law(law).name != CHINCHILLA.name:
        raise ValueError(f"joint fits take the {CHINCHILLA.name} law; got {law!r}")
    table = read_fit_table(path, mapping, family_column)
    names = sorted(set(table["family"]))
    datasets = {
        name: {k: table[k][table["family"] == name] for k in REQUIRED} for name in names
    }
    started = time.perf_counter()
    if bootstrap > 0:
        boot = bootstrap_joint(datasets, shared, options, n_resamples=int(bootstrap), seed=seed, level=level)
        fit, ci = boot.fit, boot.ci
    else:
        fit, ci = fit_joint(datasets, shared, options), {name: {} for name in names}
    seconds = time.perf_counter() - started
    return {
        "law": CHINCHILLA.name,
        "shared": list(fit.shared),
        "shared_params": {k: float(v) for k, v in fit.shared_params.items()},
        "families": {
            name: {
                "params": {k: float(v) for k, v in fit.params[name].items()},
                "ci": {k: [float(lo), float(hi)] for k, (lo, hi) in ci[name].items()},
                "n_runs": int(fit.n_runs[name]),
            }
            for name in names
        },
        "objective": float(fit.objective),
        "converged": bool(fit.converged),
        "seconds": float(seconds),
    }


def fit_file(
    path: str | Path,
    law: str = "chinchilla",
    *,
    mapping: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """Fit ``law`` to the runs in ``path`` and return a JSON-ready summary.

    Args:
        path, mapping: the file and, for a file in its own layout, its TOML mapping.
        law: the law's catalogue name.
        options: the law's fit options, e.g. ``{"exclude_top_loss": 5, "huber_delta": 1e-3}``
            (an option the law does not take is an error).
        bootstrap: resamples for intervals (0: none).
        seed, level: the bootstrap's seed and interval coverage.

    Returns:
        ``{"law", "n_runs", "params", "objective", "converged", "seconds",
        "allocation_exponents": {"a", "b"}}`` plus ``"ci": {name: [lo, hi]}``
        when ``bootstrap > 0``.  ``params`` holds the law's parameters (E, A, B,
        alpha, beta for Chinchilla).  ``allocation_exponents`` is None for a law
        without an allocation rule (the broken power law).  ``seconds`` times the
        fit and bootstrap, not the file read.

    Raises:
        FileProblem: the file cannot be read (see :func:`read_fit_table`).
        ValueError: an unknown law or option, or a column the law needs is missing.
        laws.errors.FitError: the runs cannot support the fit.
    """
    spec = get_law(law)
    data = read_fit_table(path, mapping)
    compute = data["flops"] if "flops" in data else 6.0 * data["params"] * data["tokens"]  # the usual 6ND estimate
    if "flops" in spec.required_columns:
        data["flops"] = compute
    if "budget" in spec.required_columns:
        data["budget"] = compute  # a run's IsoFLOP budget is its compute
    spec.check_columns(data)
    fit_options = spec.options(options)
    started = time.perf_counter()
    if bootstrap > 0:
        boot = bootstrap_law(spec, data, fit_options, n_resamples=int(bootstrap), seed=seed, level=level)
        fit = boot.fit
    else:
        boot = None
        fit = spec.fit(data, fit_options)
    seconds = time.perf_counter() - started
    exponents = None
    if spec.allocates:
        a, b = spec.exponents(fit.params)
        exponents = {"a": float(a), "b": float(b)}
    out: dict[str, Any] = {
        "law": spec.name,
        "n_runs": int(fit.n_runs),
        "params": {k: float(v) for k, v in fit.params.items()},
        "objective": float(fit.objective),
        "converged": bool(fit.converged),
        "seconds": float(seconds),
    }
    if boot is not None:
        out["ci"] = {k: [float(lo), float(hi)] for k, (lo, hi) in boot.ci.items()}
    out["allocation_exponents"] = exponents
    return out

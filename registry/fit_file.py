"""Fit a law to a table of runs on disk: the I/O shell around :mod:`laws`.

``scalereg fit`` is wired to :func:`fit_file`.  The file is read by the same reader as
``scalereg ingest`` (:func:`registry.adapters.mapping.read_with_mapping`: CSV, Parquet or JSONL,
the size, pickle and encoding checks, and a TOML mapping for files that name their columns their
own way), so a file that fits also ingests and the other way round.  Fitting lives in
:mod:`laws`, so this module stays a thin, dagster-free adapter.

Without a mapping the file is in the generic format (``params``, ``tokens`` or ``flops``,
``loss``, optionally ``unique_tokens``); the published Chinchilla export is read with its
shipped mapping, ``data/published/chinchilla/mapping.toml``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from laws.bootstrap import bootstrap as bootstrap_law
from laws.catalog import get_law
from laws.intervals import DEFAULT_LEVEL
from registry.adapters.base import FileProblem
from registry.adapters.mapping import load_mapping, read_with_mapping

__all__ = ["read_fit_table", "fit_file"]

REQUIRED = ("params", "tokens", "loss")
OPTIONAL = ("unique_tokens", "flops")
#: the family the reader stamps on the rows: a fitted file is one family, whatever it says
FILE_FAMILY = "file"


def read_fit_table(path: str | Path, mapping: str | Path | None = None) -> dict[str, np.ndarray]:
    """Read a runs table into the column arrays the laws take.

    Args:
        path: a ``.csv``, ``.tsv``, ``.parquet`` or ``.jsonl`` file.
        mapping: a TOML mapping of the file's columns (None: the generic format).

    Returns:
        ``{"params", "tokens", "loss", and "unique_tokens", "flops" where every row has them}``
        as float arrays; ``tokens`` is ``flops / (6 params)`` where the file gives only compute.

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
    return out


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

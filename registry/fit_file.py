"""Fit a law to a table of runs on disk: the I/O shell around :mod:`laws`.

``scalereg fit`` is wired to :func:`fit_file`.  Reading lives here (polars),
fitting in :mod:`laws` (numpy/scipy only), so the laws stay testable without
files and this module stays a thin, dagster-free adapter.

Accepted tables (CSV or Parquet):

* the registry's run schema: ``params``, ``tokens``, ``loss`` (optional
  ``unique_tokens``, ``flops``, ``budget``); ``tokens`` may be omitted when
  ``flops`` is given (``tokens = flops / (6 params)``);
* the published Chinchilla export (Besiroglu et al.): ``Model Size``,
  ``Training FLOP``, ``loss``, read as ``params``, ``flops`` and
  ``tokens = C / (6 N)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from laws import allocation
from laws import bootstrap as laws_bootstrap
from laws.catalog import get_law

__all__ = ["read_fit_table", "fit_file"]

REQUIRED = ("params", "tokens", "loss")
OPTIONAL = ("unique_tokens", "flops", "budget")
CHINCHILLA_EXPORT = ("Model Size", "Training FLOP", "loss")


def _read(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if suffix == ".csv":
        return pl.read_csv(path, infer_schema_length=10_000)
    if suffix in (".parquet", ".pq"):
        return pl.read_parquet(path)
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use a .csv or .parquet file")


def _numeric(df: pl.DataFrame, path: Path, name: str) -> np.ndarray:
    col = df[name]
    try:
        values = col.cast(pl.Float64, strict=True)
    except Exception:  # polars raises several error types for bad casts
        raise ValueError(f"{path}: column {name!r} is not numeric (dtype {col.dtype})") from None
    if values.null_count():
        raise ValueError(f"{path}: column {name!r} has {values.null_count()} empty value(s); fill or drop those rows")
    return values.to_numpy().astype(float)


def read_fit_table(path: str | Path) -> dict[str, np.ndarray]:
    """Read a runs table into the column arrays the laws take.

    Args:
        path: a ``.csv`` or ``.parquet`` file.

    Returns:
        ``{"params", "tokens", "loss", and any of "unique_tokens", "flops", "budget"}``
        as float arrays.

    Raises:
        ValueError: naming the file, the missing columns and how to fix them.
    """
    path = Path(path)
    df = _read(path)
    cols = set(df.columns)
    if set(CHINCHILLA_EXPORT) <= cols and not set(REQUIRED) <= cols:
        N = _numeric(df, path, "Model Size")
        C = _numeric(df, path, "Training FLOP")
        return {"params": N, "tokens": C / (6 * N), "loss": _numeric(df, path, "loss"), "flops": C}
    have_tokens = "tokens" in cols or ("flops" in cols and "params" in cols)
    missing = [c for c in REQUIRED if c not in cols and not (c == "tokens" and have_tokens)]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; found {sorted(cols)}. "
            f"A runs table needs {list(REQUIRED)} (optional {list(OPTIONAL)}; 'tokens' may be "
            f"replaced by 'flops'), or the Chinchilla export's {list(CHINCHILLA_EXPORT)}. "
            "Fix: rename the columns, e.g. N -> params, D -> tokens, final_loss -> loss."
        )
    out = {c: _numeric(df, path, c) for c in (*REQUIRED, *OPTIONAL) if c in cols}
    if "tokens" not in out:
        out["tokens"] = out["flops"] / (6 * out["params"])
    return out


def fit_file(
    path: str | Path,
    law: str = "chinchilla",
    huber_delta: float = 1e-3,
    exclude_top_loss: int = 0,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit ``law`` to the runs in ``path`` and return a JSON-ready summary.

    Returns:
        ``{"law", "n_runs", "params", "objective", "converged", "seconds",
        "allocation_exponents": {"a", "b"}}`` plus ``"ci": {name: [lo, hi]}``
        when ``bootstrap > 0`` (the number of resamples).  ``params`` holds the
        law's parameters (E, A, B, alpha, beta for Chinchilla).
        ``allocation_exponents`` is None for a law without an allocation rule
        (the broken power law).  ``seconds`` times the fit and bootstrap, not
        the file read.
    """
    data = read_fit_table(path)
    spec = get_law(law)
    if "flops" in spec.required_columns and "flops" not in data:
        data["flops"] = 6.0 * data["params"] * data["tokens"]  # the usual 6ND estimate
    spec.check_columns(data)
    options: dict[str, Any] = {"exclude_top_loss": exclude_top_loss}
    if law != "isoflop":
        options["huber_delta"] = huber_delta
    started = time.perf_counter()
    if bootstrap > 0:
        boot = laws_bootstrap.bootstrap(data, law=law, n_resamples=int(bootstrap), seed=seed, **options)
        fit = boot.fit
    else:
        boot = None
        fit = spec.fit(data, **options)
    seconds = time.perf_counter() - started
    try:
        a, b = allocation.exponents(fit.params)
        exponents: dict[str, float] | None = {"a": float(a), "b": float(b)}
    except ValueError:
        exponents = None
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

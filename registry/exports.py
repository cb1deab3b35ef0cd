"""Files for planning tools that should not open DuckDB: latest tables, plus dated copies.

Every file is written to a temporary name in the same folder and renamed into place, so a reader
sees either the old file or the new one, never half of one. The verdicts travel with the numbers:
each allocation row carries its status and reason, each coefficient its loss law's.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from registry.home import Home
from registry.planning import allocations_latest, coefficients


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_frame(folder: Path, stem: str, frame: pl.DataFrame, records: list[dict] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.parquet", folder / f"{stem}.csv", folder / f"{stem}.json"]
    _atomic_write(paths[0], frame.write_parquet)
    _atomic_write(paths[1], frame.write_csv)
    payload = json.dumps(records if records is not None else frame.to_dicts(), indent=2, default=str)
    _atomic_write(paths[2], lambda p: p.write_text(payload, encoding="utf-8"))
    return paths


def write_exports(con: duckdb.DuckDBPyConnection, home: Home) -> list[Path]:
    """Write ``exports/coefficients.*`` and ``exports/allocations.*`` and a dated copy of each.

    Nothing is written when the published tables are what the exports already hold, so a refit
    that found nothing new (or a second materialisation after it) adds no dated copy.
    """
    coefficient_records = coefficients(con)
    payload = json.dumps(coefficient_records, indent=2, default=str)
    allocations = allocations_latest(con)
    latest_json, latest_allocations = home.exports / "coefficients.json", home.exports / "allocations.parquet"
    if (
        latest_json.exists() and latest_allocations.exists()
        and latest_json.read_text(encoding="utf-8") == payload
        and pl.read_parquet(latest_allocations).equals(allocations)
    ):
        return []
    verdicts = pl.DataFrame(
        [{"family": r["family"], "law": r["law"], "status": r["status"], "reason": r["reason"]} for r in coefficient_records],
        schema={"family": pl.String, "law": pl.String, "status": pl.String, "reason": pl.String},
    )
    flat = con.sql(
        "SELECT family, law, version, fitted_at, data_version, n_runs, name, value, ci_lo, ci_hi "
        "FROM coefficients_latest ORDER BY family, law, name"
    ).pl().join(verdicts, on=["family", "law"], how="left", maintain_order="left")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    written = _write_frame(home.exports, "coefficients", flat, coefficient_records)
    written += _write_frame(home.exports, "allocations", allocations)
    versions = home.exports / "versions"
    written += _write_frame(versions, f"coefficients-{stamp}", flat, coefficient_records)
    written += _write_frame(versions, f"allocations-{stamp}", allocations)
    return written

"""Reading a data file into a polars frame, refusing what must never be read.

Data files are parsed, never executed: pickles and other object formats are refused outright.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from registry.adapters.base import FileProblem

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
REFUSED_SUFFIXES = {".pkl", ".pickle", ".joblib", ".npy", ".npz", ".pt", ".pth", ".ckpt", ".dill"}
#: Larger files are refused with this limit in the message rather than risk the machine's memory.
MAX_FILE_BYTES = 1 << 30

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _check_readable(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in REFUSED_SUFFIXES:
        raise FileProblem(
            f"{path.name}: {suffix} files are refused: they can run code when loaded. "
            "Export the runs as CSV, Parquet or JSONL."
        )
    size = path.stat().st_size
    if size == 0:
        raise FileProblem(f"{path.name}: the file is empty; export the runs again with a header row and data.")
    if size > MAX_FILE_BYTES:
        raise FileProblem(
            f"{path.name}: {size / 2**30:.1f} GiB is over the {MAX_FILE_BYTES / 2**30:.0f} GiB limit for one file; "
            "split it into smaller files and drop them one by one."
        )
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head[:2] in PICKLE_MAGIC:
        raise FileProblem(f"{path.name}: this is a Python pickle, which is never loaded. Export it as CSV, Parquet or JSONL.")
    if suffix in CSV_SUFFIXES | JSONL_SUFFIXES and b"\x00" in head:
        raise FileProblem(f"{path.name}: binary content in a text file; export the runs as UTF-8 CSV or JSONL.")


def read_table(path: Path, header: bool = True, delimiter: str | None = None) -> pl.DataFrame:
    """The file's rows as a frame; headerless CSV columns are named "0", "1", ... by position."""
    _check_readable(path)
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            separator = delimiter or ("\t" if suffix == ".tsv" else ",")
            frame = pl.read_csv(
                path,
                has_header=header,
                separator=separator,
                infer_schema_length=10_000,
                null_values=["", "NA", "N/A", "null", "None"],
            )
            if not header:
                frame = frame.rename({name: str(i) for i, name in enumerate(frame.columns)})
        elif suffix in PARQUET_SUFFIXES:
            frame = pl.read_parquet(path)
        elif suffix in JSONL_SUFFIXES:
            frame = pl.read_ndjson(path, infer_schema_length=10_000)
        else:
            raise FileProblem(
                f"{path.name}: unsupported file type {suffix or '(none)'!r}; "
                "use .csv, .tsv, .parquet or .jsonl (one JSON object per line)."
            )
    except FileProblem:
        raise
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError, ValueError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "utf-8" in text.lower() or "utf8" in text.lower():
            raise FileProblem(f"{path.name}: not UTF-8 text ({text}); save the file as UTF-8 and drop it again.") from None
        raise FileProblem(f"{path.name}: could not be read as {suffix} ({text}); check the format and export it again.") from None
    if frame.height == 0:
        raise FileProblem(f"{path.name}: has no data rows (only a header or nothing); add the runs and drop it again.")
    return frame

"""Reading a data file into a polars frame, refusing what must never be read.

Data files are parsed, never executed: pickles and other object formats are refused outright.
Whatever goes wrong while reading becomes a :class:`FileProblem` naming the file, the line where
one can be found, and the fix; nothing from a parser reaches the user as a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from registry.adapters.base import PARSE_ERROR_SCHEMA, FileProblem

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
REFUSED_SUFFIXES = {".pkl", ".pickle", ".joblib", ".npy", ".npz", ".pt", ".pth", ".ckpt", ".dill"}
#: Larger files are refused with this limit in the message rather than risk the machine's memory.
MAX_FILE_BYTES = 1 << 30
#: A Parquet file is compressed: its row count is checked too, before anything is decompressed.
MAX_ROWS = 100_000_000

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: Cells read as missing in CSV columns of numbers. In text columns (family, run name, loss name,
#: tags) only an empty cell is missing: a run named "None" or "NA" keeps its name.
NULL_VALUES = ["", "NA", "N/A", "null", "None"]
#: The first bytes looked at for line ends; a file with no LF in them is read whole to check for CR-only ends.
_HEAD_BYTES = 1 << 16

try:  # a Rust panic inside polars surfaces as this BaseException subclass
    from polars.exceptions import PanicException
except ImportError:  # pragma: no cover - older polars
    PanicException = RuntimeError  # type: ignore[misc,assignment]

#: Errors any parser may raise on malformed input; all become a FileProblem.
READ_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError, PanicException, csv.Error)


@dataclass(frozen=True)
class Table:
    """A file's rows as read, and problems the reader found in single rows (row numbers count from 1).

    A row problem (a JSON key given twice) rejects that row with the reason; the rest of the file is read.
    """

    frame: pl.DataFrame
    row_problems: pl.DataFrame


def size_problem(path: Path) -> str | None:
    """Why ``path`` is too large to read, or None. Checked before the file is hashed or opened."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return (
            f"{path.name}: {size / 2**30:.1f} GiB is over the {MAX_FILE_BYTES / 2**30:g} GiB limit for one file "
            f"({size:,} > {MAX_FILE_BYTES:,} bytes); split it into smaller files and drop them one by one."
        )
    return None


def kind_problem(path: Path) -> str | None:
    """Why ``path`` is not something that can be read as data (a pipe, a device), or None."""
    mode = path.stat().st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"{path.name}: not a regular file (a pipe, socket or device); give a CSV, Parquet or JSONL file."


def _check_readable(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in REFUSED_SUFFIXES:
        raise FileProblem(
            f"{path.name}: {suffix} files are refused: they can run code when loaded. "
            "Export the runs as CSV, Parquet or JSONL."
        )
    if path.is_dir():
        raise FileProblem(f"{path.name}: is a folder; ingest the CSV, Parquet or JSONL files in it one by one.")
    if problem := kind_problem(path) or size_problem(path):
        raise FileProblem(problem)
    if path.stat().st_size == 0:
        raise FileProblem(f"{path.name}: the file is empty; export the runs again with a header row and data.")
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head[:2] in PICKLE_MAGIC:
        raise FileProblem(f"{path.name}: this is a Python pickle, which is never loaded. Export it as CSV, Parquet or JSONL.")
    if suffix in CSV_SUFFIXES | JSONL_SUFFIXES:
        if head[:2] in UTF16_BOMS:
            raise FileProblem(f"{path.name}: UTF-16 text; save the file as UTF-8 and drop it again.")
        if b"\x00" in head:
            raise FileProblem(f"{path.name}: binary content in a text file; export the runs as UTF-8 CSV or JSONL.")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _locate_csv_problem(path: Path, header: bool, separator: str) -> str | None:
    """The first line whose shape differs from the header's (or whose quoting is broken), for the message."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter=separator, strict=True)
            expected = None
            line = 1
            try:
                for record in reader:
                    if record:
                        if expected is None:
                            expected = len(record)
                        elif len(record) != expected:
                            what = "the header has" if header else "the first row has"
                            return (
                                f"line {line} has {len(record)} fields where {what} {expected}: quote values "
                                f"that contain {separator!r}, or remove the extra fields"
                            )
                    line = reader.line_num + 1
            except csv.Error as error:
                return f"line {line}: {error} (a quote that is not closed or not escaped as \"\")"
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _locate_jsonl_problem(path: Path) -> str | None:
    """The first line that is not one JSON object, for the message."""
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except (ValueError, RecursionError) as error:
                    return f"line {number} is not valid JSON ({error})"
                if not isinstance(value, dict):
                    kind = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}.get(type(value), "a number")
                    return f"line {number} is {kind}, not a JSON object with one run's columns"
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _with_lf_line_ends(path: Path) -> Path | bytes:
    """The file, or its bytes with CR-only line ends (classic Mac OS exports) turned into LF for the parsers."""
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
        if b"\n" in head or (b"\r" not in head and len(head) < _HEAD_BYTES):
            return path
        data = head + handle.read()
    return data.replace(b"\r", b"\n") if b"\r" in data and b"\n" not in data else path


def _read_csv(source: Path | bytes, header: bool, separator: str, text_columns: tuple[str, ...]) -> pl.DataFrame:
    # Names and keys are text even when they look like numbers: family "007" must not become 7.
    # Headerless columns are named column_0, column_1, ... by the reader, "0", "1", ... by mappings.
    names = text_columns if header else tuple(f"column_{int(c)}" for c in text_columns if c.isdigit())
    options = dict(
        has_header=header, separator=separator, schema_overrides={c: pl.String for c in names},
        glob=False,  # a file named "runs[1].csv" is a file, not a pattern
    )
    try:
        frame = pl.read_csv(source, infer_schema_length=10_000, null_values=NULL_VALUES, **options)
    except pl.exceptions.ComputeError as error:
        if "could not parse" not in str(error) or "not properly escaped" in str(error):
            raise
        # A column whose type was guessed from the first rows holds something else further down
        # ("2.8B" after ten thousand plain numbers, or a number too large for an integer): read every
        # column as text and let the unit rules parse the values, row by row.
        frame = pl.read_csv(source, infer_schema=False, null_values=NULL_VALUES, **options)
    # Text columns keep "None", "NA", "null" as written: read them again without null values, only
    # when they hold a missing cell at all.
    missing = [c for c in names if c in frame.columns and frame.get_column(c).null_count()]
    if missing:
        literal = pl.read_csv(source, infer_schema=False, columns=missing, **options)
        frame = frame.with_columns(literal.get_column(c) for c in missing)
    return frame


def _repeated_header_names(source: Path | bytes, separator: str) -> list[str]:
    """Names the header gives more than once, as written (the reader renames repeats to NAME_duplicated_0)."""
    try:
        with (io.StringIO(source.decode("utf-8"), newline="") if isinstance(source, bytes)
              else source.open(encoding="utf-8", newline="")) as handle:
            header = next((record for record in csv.reader(handle, delimiter=separator) if record), [])
    except (UnicodeDecodeError, csv.Error):
        return []  # the reader has already read it, or reports it
    return sorted(name for name, count in Counter(header).items() if count > 1)


def _jsonl_lines(data: bytes) -> list[tuple[int, bytes]]:
    """The non-blank lines with their line numbers: the JSONL reader skips blank lines, so row i is the i-th."""
    return [(number, line) for number, line in enumerate(data.split(b"\n"), start=1) if line.strip()]


def _repeated_keys(line: bytes) -> list[str]:
    """Keys an object on this line gives more than once (a JSON parser silently keeps one of the values)."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict:
        counts = Counter(key for key, _ in items)
        repeated.extend(key for key, count in counts.items() if count > 1)
        return dict(items)

    try:
        json.loads(line, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return []  # not JSON: the reader says which line
    return repeated


#: A JSON string followed by a colon: an object key (or, rarely, text inside a string that looks like one).
_KEY_TOKEN = r'"(?:[^"\\]|\\.)*"\s*:'


def _jsonl_row_problems(lines: list[tuple[int, bytes]]) -> pl.DataFrame:
    """Rows whose line gives a key twice. Only lines where some key-like text repeats (or keys are written with
    escapes) are parsed key by key, so a long file costs one vectorised scan, not a Python parse per line."""
    texts = pl.Series([line.decode("utf-8", errors="replace") for _, line in lines], dtype=pl.String)
    keys = texts.str.extract_all(_KEY_TOKEN).list.eval(pl.element().str.replace(r"\s*:$", ""))
    suspect = (keys.list.len() > keys.list.n_unique()) | texts.str.contains("\\u", literal=True)
    problems = [
        (row + 1, f"key {key!r} appears more than once on line {lines[row][0]}; keep one of the values "
         "(JSON readers keep only one, silently)")
        for row in suspect.arg_true().to_list()
        for key in _repeated_keys(lines[row][1])
    ]
    return pl.DataFrame(problems, schema=PARSE_ERROR_SCHEMA, orient="row")


def _json_kind(value: object) -> str:
    return {bool: "bool", int: "number", float: "number", str: "text", list: "list", dict: "object"}[type(value)]


def _column_of_values(name: str, values: list[object]) -> pl.Series:
    """One column from parsed JSON values: as it is when its values are of one kind, else as text, so each
    value that is not what its column needs (true among numbers) rejects its own row, named."""
    if len({_json_kind(v) for v in values if v is not None}) <= 1:
        try:
            return pl.Series(name, values, strict=False)
        except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
            pass
    return pl.Series(name, [v if v is None or isinstance(v, str) else json.dumps(v) for v in values], dtype=pl.String)


def _jsonl_by_rows(lines: list[tuple[int, bytes]]) -> pl.DataFrame:
    """A JSONL file whose columns mix kinds of values, read row by row (the columnar reader refuses them)."""
    objects = [json.loads(line) for _, line in lines]
    if not all(isinstance(value, dict) for value in objects):
        raise ValueError("a line is not a JSON object")
    keys = list(dict.fromkeys(key for value in objects for key in value))
    return pl.DataFrame([_column_of_values(key, [value.get(key) for value in objects]) for key in keys])


def _read_jsonl(source: Path | bytes) -> Table:
    data = source if isinstance(source, bytes) else source.read_bytes()
    lines = _jsonl_lines(data)
    try:
        frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=10_000)
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError) as error:
        try:
            frame = _jsonl_by_rows(lines)
        except (ValueError, RecursionError):
            raise error from None  # not JSON after all: the caller names the line
    return Table(frame, _jsonl_row_problems(lines))


def _hex(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    return str(value)


def _plain_types(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns every later step can handle: bytes and categories become text, decimals floats."""
    converted = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Binary:
            column = frame.get_column(name)
            try:
                converted.append(column.cast(pl.String).alias(name))
            except READ_ERRORS:
                converted.append((pl.lit("0x") + column.bin.encode("hex")).alias(name))
        elif isinstance(dtype, (pl.Categorical, pl.Enum)):
            converted.append(frame.get_column(name).cast(pl.String))
        elif isinstance(dtype, pl.Decimal):
            converted.append(frame.get_column(name).cast(pl.Float64))
        elif dtype == pl.Object:
            converted.append(frame.get_column(name).map_elements(str, return_dtype=pl.String))
        elif dtype.is_nested() and "Binary" in str(dtype):  # polars cannot write bytes inside lists as JSON
            values = frame.get_column(name).to_list()
            texts = [None if v is None else json.dumps(v, default=_hex) for v in values]
            converted.append(pl.Series(name, texts, dtype=pl.String))
    return frame.with_columns(converted) if converted else frame


def read_table(
    path: Path, header: bool = True, delimiter: str | None = None, text_columns: tuple[str, ...] = ()
) -> Table:
    """The file's rows as a frame; headerless CSV columns are named "0", "1", ... by position.

    ``text_columns`` are read from CSV as text, never guessed to be numbers.
    """
    _check_readable(path)
    suffix = path.suffix.lower()
    separator = delimiter or ("\t" if suffix == ".tsv" else ",")
    row_problems = pl.DataFrame(schema=PARSE_ERROR_SCHEMA)
    try:
        if suffix in CSV_SUFFIXES:
            source = _with_lf_line_ends(path)
            frame = _read_csv(source, header, separator, tuple(text_columns))
            duplicated = _repeated_header_names(source, separator) if header else []
            if duplicated:
                raise FileProblem(
                    f"{path.name}: column(s) {', '.join(repr(c) for c in duplicated)} appear more than once in the header; "
                    "rename or remove the repeats so each value has one meaning."
                )
            if not header:
                frame = frame.rename({name: str(i) for i, name in enumerate(frame.columns)})
        elif suffix in PARQUET_SUFFIXES:
            rows = pl.scan_parquet(path, glob=False).select(pl.len()).collect().item()
            if rows > MAX_ROWS:
                raise FileProblem(
                    f"{path.name}: {rows:,} rows is over the {MAX_ROWS:,}-row limit for one file; "
                    "split it into smaller files and drop them one by one."
                )
            frame = pl.read_parquet(path, glob=False)
        elif suffix in JSONL_SUFFIXES:
            table = _read_jsonl(_with_lf_line_ends(path))  # bytes, so "[", "*" or "?" in the name is not a pattern
            frame, row_problems = table.frame, table.row_problems
        else:
            raise FileProblem(
                f"{path.name}: unsupported file type {suffix or '(none)'!r}; "
                "use .csv, .tsv, .parquet or .jsonl (one JSON object per line)."
            )
        frame = _plain_types(frame)
    except FileProblem:
        raise
    except READ_ERRORS as error:
        text = first_line(error)
        if "utf-8" in text.lower() or "utf8" in text.lower():
            raise FileProblem(f"{path.name}: not UTF-8 text ({text}); save the file as UTF-8 and drop it again.") from None
        where = None
        if suffix in CSV_SUFFIXES:
            where = _locate_csv_problem(path, header, separator)
        elif suffix in JSONL_SUFFIXES:
            where = _locate_jsonl_problem(path)
        detail = where or text
        if not where and "supertype" in text:
            detail += ": a column holds different kinds of values on different rows (a number on one, a list on another)"
        raise FileProblem(f"{path.name}: could not be read as {suffix} ({detail}); check the format and export it again.") from None
    if frame.height == 0:
        raise FileProblem(f"{path.name}: has no data rows (only a header or nothing); add the runs and drop it again.")
    return Table(frame, row_problems)

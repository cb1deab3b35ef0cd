"""The bad-input corpus (tests/fixtures/bad/, EXPECTED.md): each file's exact outcome.

Whatever the input, nothing is lost and nothing is half-written: the ``sources`` row says what
happened, rows read = accepted + rejected, every rejected row sits in ``rejects`` with its reasons,
and no traceback reaches the user.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from registry.adapters import tables
from registry.adapters.base import FileProblem
from registry.ingest import ingest_path
from tests.cli import scalereg
from tests.conftest import rows, write_csv

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "bad"
HEADER = "family,run_name,params,tokens,loss"


@dataclass(frozen=True)
class Case:
    file: str
    status: str
    counts: tuple[int, int, int]  # rows read, accepted, rejected
    error: tuple[str, ...] = ()  # every one of these is in sources.error
    reasons: dict[int, str] = field(default_factory=dict)  # row number -> a text in one of its reasons


CASES = [
    Case("empty.csv", "failed", (0, 0, 0), ("the file is empty", "export the runs again")),
    Case("header-only.csv", "failed", (0, 0, 0), ("has no data rows",)),
    Case("header-and-blank-lines.csv", "failed", (0, 0, 0), ("has no data rows (only a header and blank lines)",)),
    Case("semicolon.csv", "failed", (0, 0, 0), ("missing required column(s)", "is the delimiter ';'", "Set delimiter in a mapping")),
    Case("latin1.csv", "failed", (0, 0, 0), ("not UTF-8 text", "save the file as UTF-8")),
    Case("utf16.csv", "failed", (0, 0, 0), ("UTF-16 text", "save the file as UTF-8")),
    Case("binary-junk.csv", "failed", (0, 0, 0), ("binary content in a text file",)),
    Case("binary-junk.jsonl", "failed", (0, 0, 0), ("binary content in a text file",)),
    Case("binary-junk.parquet", "failed", (0, 0, 0), ("could not be read as .parquet", "export it again")),
    Case("missing-columns.csv", "failed", (0, 0, 0), ("missing required column(s) 'tokens'", "--mapping")),
    Case(
        "misnamed-columns.csv", "failed", (0, 0, 0),
        ("'family', 'params', 'loss'", "'Family' should be 'family'", "' params' should be 'params'", "'LOSS' should be 'loss'"),
    ),
    Case("duplicate-header.csv", "failed", (0, 0, 0), ("'params' appear more than once in the header",)),
    Case("ragged.csv", "failed", (0, 0, 0), ("line 3 has 7 fields where the header has 5", "quote values that contain ','")),
    Case("unclosed-quote.csv", "failed", (0, 0, 0), ("line 3: unexpected end of data", "a quote that is not closed")),
    Case("not-objects.jsonl", "failed", (0, 0, 0), ("line 1 is an array, not a JSON object",)),
    Case("broken.jsonl", "failed", (0, 0, 0), ("line 2 is not valid JSON",)),
    Case("runs.pkl", "failed", (0, 0, 0), (".pkl files are refused: they can run code when loaded", "CSV, Parquet or JSONL")),
    Case("pickle-renamed.csv", "failed", (0, 0, 0), ("this is a Python pickle, which is never loaded",)),
    Case(
        "params-as-strings.parquet", "ingested", (3, 2, 1),
        reasons={3: "params (column 'params') = lots cannot be read as a number; write a plain number such as 2.8e9"},
    ),
    Case(
        "params-as-booleans.parquet", "ingested", (3, 0, 3),
        reasons={r: "the column holds Boolean values, not numbers" for r in (1, 2, 3)},
    ),
    Case(
        "params-as-lists.parquet", "ingested", (3, 0, 3),
        reasons={r: "the column holds List(Float64) values, not numbers" for r in (1, 2, 3)},
    ),
    Case("binary-extra-column.parquet", "ingested", (3, 3, 0)),
    Case("extra-columns.csv", "ingested", (2, 2, 0)),
    Case("reserved-column-names.csv", "ingested", (1, 1, 0)),
    Case(
        "suffixes.csv", "ingested", (7, 3, 4),
        reasons={
            4: "params (column 'params') = 11% cannot be read as a number; a percentage is not a count",
            5: "params (column 'params') = 2.8 billion cannot be read as a number",
            6: "loss (column 'loss') = 11% cannot be read as a number; a percentage is not a loss",
            7: "loss (column 'loss') = 3.1K cannot be read as a number; a loss takes no unit suffix",
        },
    ),
    Case(
        "log10.csv", "ingested", (3, 1, 2),
        reasons={
            2: "tokens = 11.3 is below 1,000: looks like a log10 value or a unit slip",
            3: "params = 8.5 is below 1,000: looks like a log10 value",
        },
    ),
    Case(
        "non-positive-and-non-finite.csv", "ingested", (7, 1, 6),
        reasons={
            2: "params = -100000000.0 must be greater than 0",
            3: "tokens = 0.0 must be greater than 0",
            4: "params is missing (NaN); give a finite number",
            5: "tokens = inf must be a finite number",
            6: "loss = -inf must be greater than 0",
            7: "loss = 0.0 must be greater than 0",
        },
    ),
    Case("diverged.csv", "ingested", (5, 4, 1), reasons={5: "loss = 25.0 is above 20, not a plausible cross-entropy"}),
    Case(
        "duplicate-rows.csv", "ingested", (4, 1, 3),
        reasons={r: "rows 1, 3, 4 of this file have the same family, run name 'a', no step" for r in (1, 3, 4)},
    ),
    Case(
        "bad-family-names.csv", "ingested", (10, 1, 9),
        reasons={
            2: "did you mean 'fam-x'?",
            3: "did you mean 'fam-y'?",
            4: "did you mean 'x-drop-table-runs'?",
            5: "did you mean 'fam-etc'?",
            6: "did you mean 'family-unicode'?",
            7: "choose a key such as 'my-model-v1'",
            8: "(300 characters) is not a key: use 1-64 lower-case letters",
            9: "did you mean 'fam-newline'?",
            10: "family is missing",
        },
    ),
    Case("bad-tags.csv", "ingested", (3, 3, 0)),
    Case(
        "bad-steps.csv", "ingested", (4, 2, 2),
        reasons={3: "step (column 'step') = 2500.5 cannot be read as a number; a step is a whole number", 4: "step = -1 must not be negative"},
    ),
    # the second round of hostile testing (issue 14)
    Case(
        "two-losses-one-run.csv", "ingested", (3, 2, 1),
        reasons={3: "run 'r2' of family 'fam-a' has no 'train' loss, the loss the family is fitted on"},
    ),
    Case(
        "implausible-values.csv", "ingested", (5, 1, 4),
        reasons={
            2: "params = 1e+200 is above 1e15",
            3: "loss = 1e-300 is below 0.001",
            4: "compute 6ND = 6e+32 FLOPs is above 1e30",
            5: "flops = 1e+31 is above 1e30",
        },
    ),
    Case("duplicate-key.jsonl", "ingested", (2, 1, 1), reasons={2: "key 'loss' appears more than once on line 2"}),
    Case(
        "boolean-in-numbers.jsonl", "ingested", (3, 2, 1),
        reasons={2: "params (column 'params') = true cannot be read as a number"},
    ),
    Case("cr-line-endings.csv", "ingested", (2, 2, 0)),
    Case("renamed-duplicate-column.csv", "ingested", (1, 1, 0)),
    Case("null-like-run-names.csv", "ingested", (5, 5, 0)),
]
BY_FILE = {case.file: case for case in CASES}
#: Files checked by their own tests below rather than as a single case.
OWN_TESTS = {
    "conflict-first.csv", "conflict-second.csv", "float32-first.parquet", "float64-second.csv",
    "mapped-sweep.csv", "mapping-swapped.toml", "mapping-corrected.toml",
}


def assert_recorded(con, report, file_name: str) -> tuple:
    """The sources row says what happened, the counts add up and match the other tables."""
    status, error, read, accepted, rejected = rows(
        con, "SELECT status, error, rows_read, rows_accepted, rows_rejected FROM sources WHERE source_id = ?",
        [report.source_id],
    )[0]
    assert (status, error) == (report.status, report.error)
    assert (read, accepted, rejected) == (report.rows_read, report.rows_accepted, report.rows_rejected)
    assert read == accepted + rejected and report.conserved
    (in_rejects,) = rows(con, "SELECT count(*) FROM rejects WHERE source_id = ?", [report.source_id])[0]
    (in_runs,) = rows(con, "SELECT count(*) FROM runs WHERE source_id = ?", [report.source_id])[0]
    assert in_rejects == rejected
    if status == "failed":
        assert error and file_name in error and "Traceback" not in error
        assert (read, in_runs) == (0, 0)
    else:
        assert error is None and in_runs == report.runs_added
        blank_reasons = rows(con, "SELECT count(*) FROM rejects WHERE source_id = ? AND len(reasons) = 0", [report.source_id])
        assert blank_reasons == [(0,)]
    return status, error, (read, accepted, rejected)


def reasons_by_row(con, report) -> dict[int, list[str]]:
    found = rows(con, "SELECT row_number, reasons FROM rejects WHERE source_id = ? ORDER BY row_number", [report.source_id])
    return dict(found)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
def test_each_bad_file_has_its_exact_outcome(con, home, case):
    report = ingest_path(con, home, BAD / case.file)
    status, error, counts = assert_recorded(con, report, case.file)
    assert (status, counts) == (case.status, case.counts), error
    for text in case.error:
        assert text in error, error
    got = reasons_by_row(con, report)
    assert set(got) == set(case.reasons) or not case.reasons, got
    for row_number, text in case.reasons.items():
        assert any(text in reason for reason in got[row_number]), (row_number, got[row_number])


def test_every_file_of_the_corpus_is_checked_and_documented():
    files = {p.name for p in BAD.iterdir() if p.suffix not in (".py", ".md") and not p.name.startswith(".")}
    assert files == set(BY_FILE) | OWN_TESTS
    documented = (BAD / "EXPECTED.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in documented for name in files)


def test_every_rejected_row_is_kept_verbatim(con, home):
    report = ingest_path(con, home, BAD / "suffixes.csv")
    raw = {n: json.loads(r) for n, r in rows(con, "SELECT row_number, raw FROM rejects WHERE source_id = ?", [report.source_id])}
    assert raw[5] == {"family": "fam", "run_name": "words", "params": "2.8 billion", "tokens": "2e9", "loss": "3.1"}
    assert raw[7]["loss"] == "3.1K"


def test_suffixed_counts_are_converted_when_the_unit_is_unambiguous(con, home):
    ingest_path(con, home, BAD / "suffixes.csv")
    got = dict((name, (n, d)) for name, n, d in rows(con, "SELECT run_name, params, tokens FROM runs"))
    assert got == {"b28": (2.8e9, 56e9), "m70": (70e6, 32e3), "lower": (125e6, 2.5e9)}


def test_unknown_columns_are_kept_in_tags(con, home):
    ingest_path(con, home, BAD / "extra-columns.csv")
    tags = {name: json.loads(t) for name, t in rows(con, "SELECT run_name, tags FROM runs")}
    assert tags == {"a": {"lr": 0.001, "notes": "first try", "seed": 7}, "b": {"lr": 0.0005, "notes": None, "seed": 8}}


def test_columns_named_like_internal_ones_are_kept_not_confused(con, home):
    ingest_path(con, home, BAD / "reserved-column-names.csv")
    (row_number, tags) = rows(con, "SELECT row_number, tags FROM runs")[0]
    assert row_number == 1 and json.loads(tags) == {"row_number_in_file": 99, "raw": "x", "member": "y"}


def test_a_binary_column_is_kept_in_tags_as_text(con, home):
    ingest_path(con, home, BAD / "binary-extra-column.parquet")
    blobs = dict((n, json.loads(t)["blob"]) for n, t in rows(con, "SELECT run_name, tags FROM runs"))
    assert blobs == {"a": "0xff0001", "b": "0x6f6b", "c": None}


def test_tags_that_are_not_json_are_kept_as_text(con, home):
    ingest_path(con, home, BAD / "bad-tags.csv")
    tags = dict(rows(con, "SELECT run_name, tags FROM runs"))
    assert json.loads(tags["a"]) == "baseline" and json.loads(tags["b"]) == {"lr": 0.001} and tags["c"] is None


def test_diverged_runs_are_accepted_and_flagged(con, home):
    ingest_path(con, home, BAD / "diverged.csv")
    flags = dict(rows(con, "SELECT run_name, flags FROM runs"))
    assert flags == {"fine": [], "div6": ["diverged"], "div8": ["diverged"], "div11": ["diverged"]}


def test_one_run_name_with_two_losses_keeps_neither(con, home):
    """Run 'a' has loss 3.1 (twice) and 3.0: keeping either would pick one run's value for another's."""
    ingest_path(con, home, BAD / "duplicate-rows.csv")
    assert rows(con, "SELECT run_name, loss, row_number FROM runs ORDER BY row_number") == [("b", 2.9, 2)]


def test_whole_number_steps_are_kept_fractional_ones_rejected(con, home):
    ingest_path(con, home, BAD / "bad-steps.csv")
    assert rows(con, "SELECT step FROM run_points ORDER BY step") == [(1000,), (2000,)]
    assert rows(con, "SELECT final_step, tokens FROM runs") == [(2000, 2e9)]


def test_the_same_run_with_other_values_in_a_second_file_is_rejected_naming_the_first(con, home):
    first = ingest_path(con, home, BAD / "conflict-first.csv")
    second = ingest_path(con, home, BAD / "conflict-second.csv")
    assert assert_recorded(con, first, "conflict-first.csv")[2] == (2, 2, 0)
    assert assert_recorded(con, second, "conflict-second.csv")[2] == (3, 1, 2)
    got = reasons_by_row(con, second)
    assert "conflicts with the same run from source 'conflict-first.csv'" in got[1][0]
    assert "loss=3.1; here: N=100000000.0, D=2000000000.0, loss=2.5" in got[1][0]
    assert "with the same values; nothing to add" in got[2][0]
    assert rows(con, "SELECT run_name, loss FROM runs ORDER BY run_name") == [("r1", 3.1), ("r2", 2.9), ("r3", 2.7)]


def test_both_losses_of_one_run_are_stored_and_the_family_fits_one(con, home):
    ingest_path(con, home, BAD / "two-losses-one-run.csv")
    assert rows(con, "SELECT run_name, loss_name, loss FROM runs") == [("r1", "train", 3.1)]
    assert rows(con, "SELECT loss_name, loss FROM run_points ORDER BY loss_name") == [("train", 3.1), ("val/c4", 3.4)]


def test_values_outside_physical_ranges_never_reach_the_registry(con, home):
    ingest_path(con, home, BAD / "implausible-values.csv")
    assert rows(con, "SELECT run_name FROM runs") == [("ok",)]
    (reasons,) = rows(con, "SELECT reasons FROM rejects WHERE row_number = 2")[0]
    assert sorted(r.split(" ")[0] for r in reasons) == ["params", "tokens"]  # one reason per value out of range


def test_run_names_that_look_like_nulls_are_kept_and_only_an_empty_one_is_derived(con, home):
    ingest_path(con, home, BAD / "null-like-run-names.csv")
    names = [n for (n,) in rows(con, "SELECT run_name FROM runs ORDER BY params")]
    assert names == ["None", "NA", "N/A", "null", "N=1600000000,D=2000000000"]


def test_a_column_named_like_a_renamed_repeat_is_kept_as_its_own_column(con, home):
    ingest_path(con, home, BAD / "renamed-duplicate-column.csv")
    assert json.loads(rows(con, "SELECT tags FROM runs")[0][0]) == {"lr": 0.001, "lr_duplicated_0": 0.002}


def test_float32_values_are_the_same_values_as_their_decimal_text(con, home):
    first = ingest_path(con, home, BAD / "float32-first.parquet")
    second = ingest_path(con, home, BAD / "float64-second.csv")
    assert assert_recorded(con, first, "float32-first.parquet")[2] == (2, 2, 0)
    assert assert_recorded(con, second, "float64-second.csv")[2] == (2, 0, 2)
    got = reasons_by_row(con, second)
    assert "run already in the registry from source 'float32-first.parquet' with the same values" in got[1][0]
    assert "conflicts with the same run" in got[2][0] and "here: N=200000000.0, D=4000000000.0, loss=2.95" in got[2][0]


def test_a_corrected_mapping_supersedes_the_wrong_reading_and_says_so(con, home):
    wrong = ingest_path(con, home, BAD / "mapped-sweep.csv", mapping=BAD / "mapping-swapped.toml")
    assert rows(con, "SELECT params, tokens FROM runs ORDER BY params") == [(2e9, 1e8), (4e9, 2e8)]
    fixed = ingest_path(con, home, BAD / "mapped-sweep.csv", mapping=BAD / "mapping-corrected.toml")
    assert assert_recorded(con, fixed, "mapped-sweep.csv")[2] == (2, 2, 0)
    assert fixed.supersedes == (wrong.source_id,)
    assert rows(con, "SELECT params, tokens, source_id FROM runs ORDER BY params") == [
        (1e8, 2e9, fixed.source_id), (2e8, 4e9, fixed.source_id),
    ]
    assert rows(con, "SELECT superseded_by FROM sources WHERE source_id = ?", [wrong.source_id]) == [(fixed.source_id,)]


def test_bad_family_names_never_reach_the_registry(con, home):
    ingest_path(con, home, BAD / "bad-family-names.csv")
    assert rows(con, "SELECT DISTINCT family FROM runs") == [("good-family",)]
    tables_now = {t for (t,) in rows(con, "SELECT table_name FROM information_schema.tables")}
    assert {"sources", "runs", "run_points", "rejects"} <= tables_now
    (raw,) = rows(con, "SELECT raw FROM rejects WHERE row_number = 4")[0]
    assert json.loads(raw)["family"] == "x'); DROP TABLE runs; --"  # kept verbatim, as data


def test_a_column_that_changes_type_after_the_first_rows_is_still_read(con, home, tmp_path):
    lines = [f"fam,r{i},{1e8 + i},2e9,3.1" for i in range(10_001)] + ["fam,late,2.8B,2e9,3.1", "fam,bad,lots,2e9,3.1"]
    path = write_csv(tmp_path / "late.csv", "\n".join([HEADER, *lines]))
    report = ingest_path(con, home, path)
    assert assert_recorded(con, report, "late.csv")[2] == (10_003, 10_002, 1)
    assert rows(con, "SELECT params FROM runs WHERE run_name = 'late'") == [(2.8e9,)]


def test_a_path_with_dot_dot_is_archived_inside_the_home(con, home, tmp_path):
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    write_csv(tmp_path / "escape.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1")
    report = ingest_path(con, home, inner / ".." / ".." / "escape.csv")
    assert report.status == "ingested"
    (archived,) = rows(con, "SELECT archive_path FROM sources")[0]
    archived = Path(archived)
    assert archived.resolve().is_relative_to(home.archive.resolve())
    assert archived == home.archive.resolve() / report.sha256[:2] / report.sha256 / "escape.csv"


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def test_a_2_gib_file_is_refused_with_the_limit_without_being_read(con, home, tmp_path, monkeypatch):
    huge = _sparse(tmp_path / "huge.csv", 2 * 2**30 + 1)
    # reading or hashing the whole file would fail this test: only the ends may be read
    monkeypatch.setattr("registry.ingest.content_hash", lambda path: pytest.fail("hashed a refused file"))
    report = ingest_path(con, home, huge)
    status, error, counts = assert_recorded(con, report, "huge.csv")
    assert (status, counts) == ("failed", (0, 0, 0))
    assert "2.0 GiB is over the 1 GiB limit for one file" in error and "split it into smaller files" in error


def test_the_size_limit_applies_to_any_file_over_it(con, home, monkeypatch):
    monkeypatch.setattr(tables, "MAX_FILE_BYTES", 100)
    report = ingest_path(con, home, BAD / "bad-family-names.csv")
    assert report.status == "failed" and "over the" in report.error and "bytes" in report.error


def test_a_folder_is_not_a_file(con, home, tmp_path):
    folder = tmp_path / "exports.csv"
    folder.mkdir()
    write_csv(folder / "inside.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1")
    report = ingest_path(con, home, folder)
    status, error, counts = assert_recorded(con, report, "exports.csv")
    assert (status, counts) == ("failed", (0, 0, 0)) and "is a folder" in error


def test_a_named_pipe_is_refused_before_anything_is_read(con, home, tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(FileProblem, match="not a regular file"):
        ingest_path(con, home, fifo)
    assert rows(con, "SELECT count(*) FROM sources") == [(0,)]


# --- through the command, as a user runs it -------------------------------------------------


@pytest.mark.parametrize(
    ("file", "code", "says"),
    [
        ("empty.csv", 1, "the file is empty"),
        ("pickle-renamed.csv", 1, "never loaded"),
        ("binary-junk.parquet", 1, "could not be read as .parquet"),
        ("ragged.csv", 1, "line 3 has 7 fields"),
        ("suffixes.csv", 0, "rows read 7, accepted 3, rejected 4"),
    ],
)
def test_the_command_reports_bad_files_without_a_traceback(home, file, code, says):
    done = scalereg("ingest", str(BAD / file), home=home.root)
    assert done.returncode == code, done.stderr
    assert says in done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


def test_the_command_refuses_a_huge_file_quickly(home, tmp_path):
    huge = _sparse(tmp_path / "huge.csv", 2 * 2**30 + 1)
    done = scalereg("ingest", str(huge), home=home.root, timeout=60)
    assert done.returncode == 1 and "over the 1 GiB limit" in done.stdout and "Traceback" not in done.stderr


def test_the_command_refuses_a_pipe_and_a_bad_mapping_in_one_line(home, tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    done = scalereg("ingest", str(fifo), home=home.root, timeout=60)
    assert done.returncode == 1 and "not a regular file" in done.stderr and "Traceback" not in done.stderr
    mapping = tmp_path / "map.toml"
    mapping.write_bytes(b"family = \"caf\xe9\"\n")
    data = shutil.copy(BAD / "extra-columns.csv", tmp_path / "runs.csv")
    done = scalereg("ingest", str(data), "--mapping", str(mapping), home=home.root)
    assert done.returncode == 1 and "map.toml: not UTF-8" in done.stdout and "Traceback" not in done.stderr


# --- found by the property tests (tests/registry/test_properties.py) -------------------------------


def test_keys_and_names_that_look_like_numbers_stay_text(con, home, tmp_path):
    path = write_csv(tmp_path / "numeric-names.csv", f"{HEADER}\n007,001,1e8,2e9,3.1\n1e5,2.50,2e8,4e9,2.9")
    report = ingest_path(con, home, path)
    assert (report.rows_accepted, report.rows_rejected) == (2, 0)
    assert rows(con, "SELECT family, run_name FROM runs ORDER BY params") == [("007", "001"), ("1e5", "2.50")]


def test_a_count_beyond_64_bit_integers_is_named_and_rejected_for_its_bound(con, home, tmp_path):
    path = write_csv(tmp_path / "huge-n.csv", "family,params,tokens,loss\nfam,9.3e18,2e9,3.1\nfam,1e8,2e9,3.0")
    report = ingest_path(con, home, path)
    assert (report.status, report.rows_accepted, report.rows_rejected) == ("ingested", 1, 1), report.error
    assert rows(con, "SELECT run_name FROM runs") == [("N=100000000,D=2000000000",)]
    assert "params = 9.3e+18 is above 1e15" in reasons_by_row(con, report)[1][0]


@pytest.mark.parametrize("name", ["runs[1].csv", "runs*.csv", "runs?.parquet", "runs [copy].jsonl"])
def test_a_file_name_with_pattern_characters_is_read_as_that_file(con, home, tmp_path, name):
    import polars as pl

    frame = pl.DataFrame({"family": ["fam"], "run_name": ["a"], "params": [1e8], "tokens": [2e9], "loss": [3.1]})
    path = tmp_path / name
    {".csv": frame.write_csv, ".parquet": frame.write_parquet, ".jsonl": frame.write_ndjson}[path.suffix](path)
    report = ingest_path(con, home, path)
    assert (report.status, report.rows_accepted) == ("ingested", 1), report.error

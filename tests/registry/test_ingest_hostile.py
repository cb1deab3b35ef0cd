"""Ingest under hostile input (issue 14): every accepted value stored, corrected sources, physical bounds,
float32 precision, and the smaller reader cases (JSONL keys and types, CR line endings, column names,
run names that look like nulls).

Each test reproduces a defect found by trying ingest as a hostile user would; the expected values are
the inputs themselves, never values read back from the code under test.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from registry.fit_store import family_runs
from registry.ingest import ingest_path
from tests.conftest import rows, write_csv

HEADER = "family,run_name,params,tokens,loss"
WITH_LOSS_NAME = "family,run_name,params,tokens,loss,loss_name"


def reasons_by_row(con, report) -> dict[int, list[str]]:
    return dict(rows(con, "SELECT row_number, reasons FROM rejects WHERE source_id = ? ORDER BY row_number", [report.source_id]))


def assert_conserved(con, report) -> None:
    """rows read = accepted + rejected, and the sources row and rejects agree with the report."""
    read, accepted, rejected = rows(
        con, "SELECT rows_read, rows_accepted, rows_rejected FROM sources WHERE source_id = ?", [report.source_id]
    )[0]
    assert (read, accepted, rejected) == (report.rows_read, report.rows_accepted, report.rows_rejected)
    assert read == accepted + rejected
    assert rows(con, "SELECT count(*) FROM rejects WHERE source_id = ?", [report.source_id]) == [(rejected,)]


# --- 1. two losses of one run: both stored, one fitted loss per family -----------------------------------


def test_two_losses_of_one_run_are_both_stored(con, home, tmp_path):
    path = write_csv(tmp_path / "two.csv", f"{WITH_LOSS_NAME}\nfam-a,r1,1e8,2e9,3.1,train\nfam-a,r1,1e8,2e9,3.4,val/c4")
    report = ingest_path(con, home, path)
    assert (report.status, report.rows_accepted, report.rows_rejected) == ("ingested", 2, 0), report.error
    assert_conserved(con, report)
    assert rows(con, "SELECT run_name, loss, loss_name FROM runs") == [("r1", 3.1, "train")]
    points = rows(con, "SELECT p.loss_name, p.loss FROM run_points p JOIN runs r USING (run_id) ORDER BY p.loss_name")
    assert points == [("train", 3.1), ("val/c4", 3.4)]


def test_the_first_loss_name_of_a_family_is_its_fitted_loss_and_runs_never_mix_losses(con, home, tmp_path):
    body = "fam-a,r1,1e8,2e9,3.4,val/c4\nfam-a,r1,1e8,2e9,3.1,train\nfam-a,r2,2e8,4e9,2.9,train\nfam-a,r3,4e8,8e9,3.0,val/c4"
    report = ingest_path(con, home, write_csv(tmp_path / "mixed.csv", f"{WITH_LOSS_NAME}\n{body}"))
    assert_conserved(con, report)
    assert rows(con, "SELECT DISTINCT loss_name FROM runs") == [("val/c4",)]
    assert rows(con, "SELECT run_name, loss FROM runs ORDER BY run_name") == [("r1", 3.4), ("r3", 3.0)]
    assert rows(con, "SELECT loss FROM run_points WHERE loss_name = 'train'") == [(3.1,)]
    # r2 has only a training loss: no run of a val/c4 family can hold it, and it is not dropped silently
    assert (report.rows_accepted, report.rows_rejected) == (3, 1)
    (reason,) = reasons_by_row(con, report)[3]
    assert "run 'r2' of family 'fam-a' has no 'val/c4' loss" in reason and "loss_name" in reason


def test_the_family_settings_decide_the_fitted_loss(con, home, tmp_path):
    (home.root / "families").mkdir(exist_ok=True)
    (home.root / "families" / "fam-a.toml").write_text('loss_name = "val/c4"\n', encoding="utf-8")
    path = write_csv(tmp_path / "two.csv", f"{WITH_LOSS_NAME}\nfam-a,r1,1e8,2e9,3.1,train\nfam-a,r1,1e8,2e9,3.4,val/c4")
    report = ingest_path(con, home, path)
    assert (report.rows_accepted, report.rows_rejected) == (2, 0), report.error
    assert rows(con, "SELECT loss_name, loss FROM runs") == [("val/c4", 3.4)]


def test_a_later_file_follows_the_fitted_loss_already_in_the_registry(con, home, tmp_path):
    ingest_path(con, home, write_csv(tmp_path / "first.csv", f"{WITH_LOSS_NAME}\nfam-a,r1,1e8,2e9,3.1,train"))
    second = ingest_path(
        con, home, write_csv(tmp_path / "second.csv", f"{WITH_LOSS_NAME}\nfam-a,r1,1e8,2e9,3.4,val/c4\nfam-a,r2,2e8,4e9,3.2,val/c4")
    )
    assert_conserved(con, second)
    assert rows(con, "SELECT DISTINCT loss_name FROM runs") == [("train",)]
    # the extra loss of a run already in the registry is kept with that run, traced to its own source
    assert rows(con, "SELECT loss_name, loss, source_id FROM run_points") == [("val/c4", 3.4, second.source_id)]
    assert (second.rows_accepted, second.rows_rejected) == (1, 1)
    assert "has no 'train' loss" in reasons_by_row(con, second)[2][0]


def test_an_extra_loss_given_again_is_not_stored_twice_and_a_different_one_conflicts(con, home, tmp_path):
    first = f"{WITH_LOSS_NAME}\nfam-a,r1,1e8,2e9,3.1,train\nfam-a,r1,1e8,2e9,3.4,val/c4"
    ingest_path(con, home, write_csv(tmp_path / "first.csv", first))
    again = ingest_path(con, home, write_csv(tmp_path / "again.csv", f"{WITH_LOSS_NAME}\nfam-a,r1,1e8,2e9,3.4,val/c4"))
    other = ingest_path(con, home, write_csv(tmp_path / "other.csv", f"{WITH_LOSS_NAME}\nfam-a,r1,1e8,2e9,3.9,val/c4"))
    assert "with the same value" in reasons_by_row(con, again)[1][0]
    assert "conflicts with the val/c4 loss of run 'r1' from source 'first.csv'" in reasons_by_row(con, other)[1][0]
    assert rows(con, "SELECT loss FROM run_points WHERE loss_name = 'val/c4'") == [(3.4,)]


def test_an_extra_loss_of_another_size_is_rejected_naming_the_run(con, home, tmp_path):
    path = write_csv(tmp_path / "two.csv", f"{WITH_LOSS_NAME}\nfam-a,r1,1e8,2e9,3.1,train\nfam-a,r1,2e8,2e9,3.4,val/c4")
    report = ingest_path(con, home, path)
    assert (report.rows_accepted, report.rows_rejected) == (1, 1)
    (reason,) = reasons_by_row(con, report)[2]
    assert "N=200000000.0 differs from N=100000000.0 of run 'r1'" in reason


# --- 4. a corrected mapping or family supersedes the earlier reading of the same content -----------------


def _mapping(tmp_path, name: str, params: str, tokens: str):
    path = tmp_path / name
    path.write_text(f'family = "sweep"\n[columns]\nparams = "{params}"\ntokens = "{tokens}"\nloss = "l"\n', encoding="utf-8")
    return path


def test_a_corrected_mapping_supersedes_the_first_reading(con, home, tmp_path):
    data = write_csv(tmp_path / "sweep.csv", "n,d,l\n1e8,2e9,3.1\n2e8,4e9,2.9")
    wrong = ingest_path(con, home, data, mapping=_mapping(tmp_path, "wrong.toml", params="d", tokens="n"))
    assert rows(con, "SELECT params FROM runs ORDER BY params") == [(2e9,), (4e9,)]
    fixed = ingest_path(con, home, data, mapping=_mapping(tmp_path, "fixed.toml", params="n", tokens="d"))
    assert fixed.status == "ingested" and fixed.source_id != wrong.source_id
    assert fixed.supersedes == (wrong.source_id,)
    assert rows(con, "SELECT params, tokens FROM runs ORDER BY params") == [(1e8, 2e9), (2e8, 4e9)]
    assert rows(con, "SELECT DISTINCT source_id FROM runs") == [(fixed.source_id,)]
    # the trace: the first reading stays in sources, marked as superseded by the corrected one
    assert rows(con, "SELECT source_id, superseded_by FROM sources ORDER BY source_id") == [
        (wrong.source_id, fixed.source_id), (fixed.source_id, None),
    ]
    # and the corrected reading is itself a no-op when repeated
    again = ingest_path(con, home, data, mapping=_mapping(tmp_path, "fixed-copy.toml", params="n", tokens="d"))
    assert (again.status, again.source_id) == ("unchanged", fixed.source_id)


def test_another_family_supersedes_and_superseded_runs_are_not_fitted(con, home, tmp_path):
    data = write_csv(tmp_path / "runs.csv", "params,tokens,loss\n1e8,2e9,3.1\n2e8,4e9,2.9\n4e8,8e9,2.7")
    first = ingest_path(con, home, data, family="wrong-family")
    second = ingest_path(con, home, data, family="right-family")
    assert second.status == "ingested" and second.supersedes == (first.source_id,)
    assert family_runs(con, "wrong-family").height == 0
    assert family_runs(con, "right-family").get_column("params").sort().to_list() == [1e8, 2e8, 4e8]
    assert rows(con, "SELECT count(*) FROM rejects") == [(0,)]


def test_the_superseded_source_rejects_and_points_go_too(con, home, tmp_path):
    data = write_csv(tmp_path / "curve.csv", "params,tokens,loss,step\n1e8,1e9,3.5,100\n1e8,2e9,3.2,200\n1e8,3e9,-1,300")
    first = ingest_path(con, home, data, family="wrong-family")
    assert rows(con, "SELECT count(*) FROM run_points") == [(2,)] and first.rows_rejected == 1
    second = ingest_path(con, home, data, family="right-family")
    assert rows(con, "SELECT DISTINCT source_id FROM rejects") == [(second.source_id,)]
    assert rows(con, "SELECT DISTINCT r.family FROM run_points p JOIN runs r USING (run_id)") == [("right-family",)]
    assert rows(con, "SELECT count(*) FROM run_points") == [(2,)]


def test_the_same_content_and_reading_stays_a_no_op(con, home, tmp_path):
    data = write_csv(tmp_path / "sweep.csv", "n,d,l\n1e8,2e9,3.1")
    first = ingest_path(con, home, data, mapping=_mapping(tmp_path, "a.toml", params="n", tokens="d"))
    second = ingest_path(con, home, data, mapping=_mapping(tmp_path, "b.toml", params="n", tokens="d"))
    assert (second.status, second.source_id, second.supersedes) == ("unchanged", first.source_id, ())
    assert rows(con, "SELECT count(*) FROM sources") == [(1,)]


# --- 5. values outside physical ranges are rejected with a reason per row --------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("fam,huge,1e200,1e200,3.1", ["params = 1e+200 is above 1e15", "tokens = 1e+200 is above 1e17"]),
        ("fam,tiny-loss,1e8,2e9,1e-300", ["loss = 1e-300 is below 0.001"]),
        ("fam,six-nd,1e15,1e17,3.1", ["compute 6ND = 6e+32 FLOPs is above 1e30"]),
    ],
)
def test_values_outside_physical_ranges_are_rejected_naming_the_bound(con, home, tmp_path, line, expected):
    report = ingest_path(con, home, write_csv(tmp_path / "bounds.csv", f"{HEADER}\nfam,ok,1e8,2e9,3.1\n{line}"))
    assert (report.rows_accepted, report.rows_rejected) == (1, 1)
    reasons = reasons_by_row(con, report)[2]
    assert len(reasons) == len(expected), reasons
    for text in expected:
        assert any(text in reason for reason in reasons), reasons
    assert rows(con, "SELECT run_name FROM runs") == [("ok",)]


def test_given_compute_above_the_bound_is_rejected(con, home, tmp_path):
    path = write_csv(tmp_path / "c.csv", "family,run_name,params,tokens,flops,loss\nfam,ok,1e8,2e9,1.2e18,3.1\nfam,big,1e8,2e9,1e31,3.1")
    report = ingest_path(con, home, path)
    assert (report.rows_accepted, report.rows_rejected) == (1, 1)
    assert "flops = 1e+31 is above 1e30" in reasons_by_row(con, report)[2][0]


# --- 6. values read at float32 precision are the same values -------------------------------------------


def test_a_float32_parquet_and_a_csv_of_the_same_runs_do_not_conflict(con, home, tmp_path):
    single = tmp_path / "runs.parquet"
    pl.DataFrame(
        {"family": ["fam", "fam"], "run_name": ["r1", "r2"], "params": [1e8, 2e8], "tokens": [2e9, 4e9]}
        | {"loss": pl.Series([3.1, 2.9], dtype=pl.Float32)}
    ).write_parquet(single)
    ingest_path(con, home, single)
    report = ingest_path(con, home, write_csv(tmp_path / "runs.csv", f"{HEADER}\nfam,r1,1e8,2e9,3.1\nfam,r2,2e8,4e9,2.95"))
    reasons = reasons_by_row(con, report)
    assert "with the same values; nothing to add" in reasons[1][0]
    assert "conflicts with the same run" in reasons[2][0]  # 2.95 is not 2.9 at any precision


# --- 14. JSONL keys and types, CR line endings, column names, null-like run names ------------------------


RUN = '"family": "fam", "run_name": "{}", "params": {}, "tokens": 2e9'


def ingest_jsonl(con, home, tmp_path, *objects: str):
    """Ingest lines of JSON written as text (so a key can be given twice), one run per line."""
    path = tmp_path / "runs.jsonl"
    path.write_text("".join("{" + text + "}\n" for text in objects), encoding="utf-8")
    return ingest_path(con, home, path)


def test_a_jsonl_line_with_a_duplicate_key_is_rejected_naming_the_key(con, home, tmp_path):
    report = ingest_jsonl(
        con, home, tmp_path, RUN.format("r1", "1e8") + ', "loss": 3.1', RUN.format("r2", "2e8") + ', "loss": 3.1, "loss": 2.9'
    )
    assert (report.status, report.rows_accepted, report.rows_rejected) == ("ingested", 1, 1), report.error
    assert any("key 'loss' appears more than once on line 2" in r for r in reasons_by_row(con, report)[2])
    assert rows(con, "SELECT run_name FROM runs") == [("r1",)]


def test_a_key_repeated_only_inside_a_nested_object_or_a_string_is_not_a_duplicate(con, home, tmp_path):
    report = ingest_jsonl(
        con, home, tmp_path,
        RUN.format("r1", "1e8") + ', "loss": 3.1, "tags": {"loss": "val"}',
        RUN.format("r2", "2e8") + ', "loss": 2.9, "note": "\\"loss\\": 1"',
    )
    assert (report.rows_accepted, report.rows_rejected) == (2, 0), reasons_by_row(con, report)


def test_a_jsonl_true_in_a_numeric_column_rejects_that_row_only(con, home, tmp_path):
    report = ingest_jsonl(
        con, home, tmp_path, *(RUN.format(name, params) + ', "loss": 3.0' for name, params in (("r1", "1e8"), ("r2", "true"), ("r3", "4e8")))
    )
    assert (report.status, report.rows_accepted, report.rows_rejected) == ("ingested", 2, 1), report.error
    assert any("params (column 'params') = true cannot be read" in r for r in reasons_by_row(con, report)[2])
    assert rows(con, "SELECT run_name, params FROM runs ORDER BY run_name") == [("r1", 1e8), ("r3", 4e8)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_cr_only_line_endings_are_read_as_lines(con, home, tmp_path, suffix):
    path = tmp_path / f"old-mac{suffix}"
    if suffix == ".csv":
        path.write_bytes(f"{HEADER}\rfam,r1,1e8,2e9,3.1\rfam,r2,2e8,4e9,2.9\r".encode())
    else:
        lines = [json.dumps({"family": "fam", "run_name": n, "params": p, "tokens": 2e9, "loss": 3.0}) for n, p in (("r1", 1e8), ("r2", 2e8))]
        path.write_bytes("\r".join(lines).encode())
    report = ingest_path(con, home, path)
    assert (report.status, report.rows_read, report.rows_accepted) == ("ingested", 2, 2), report.error
    assert rows(con, "SELECT run_name, params FROM runs ORDER BY run_name") == [("r1", 1e8), ("r2", 2e8)]


def test_a_column_named_like_a_renamed_duplicate_is_a_column_of_its_own(con, home, tmp_path):
    path = write_csv(tmp_path / "lr.csv", f"{HEADER},lr,lr_duplicated_0\nfam,r1,1e8,2e9,3.1,0.001,0.002")
    report = ingest_path(con, home, path)
    assert (report.status, report.rows_accepted) == ("ingested", 1), report.error
    assert json.loads(rows(con, "SELECT tags FROM runs")[0][0]) == {"lr": 0.001, "lr_duplicated_0": 0.002}


def test_a_header_that_really_repeats_a_name_is_still_refused(con, home, tmp_path):
    path = write_csv(tmp_path / "rep.csv", f"{HEADER},lr,lr\nfam,r1,1e8,2e9,3.1,0.001,0.002")
    report = ingest_path(con, home, path)
    assert report.status == "failed" and "'lr' appear more than once in the header" in report.error


@pytest.mark.parametrize("name", ["None", "NA", "N/A", "null"])
def test_run_names_that_look_like_nulls_are_kept_as_written(con, home, tmp_path, name):
    path = write_csv(tmp_path / "names.csv", f"{HEADER}\nfam,{name},1e8,2e9,3.1\nfam,,2e8,4e9,2.9")
    report = ingest_path(con, home, path)
    assert report.rows_accepted == 2, report.error
    names = sorted(n for (n,) in rows(con, "SELECT run_name FROM runs"))
    assert names == sorted([name, "N=200000000,D=4000000000"])  # only the empty cell gets a derived name


def test_a_headerless_text_column_keeps_names_that_look_like_numbers(con, home, tmp_path):
    data = write_csv(tmp_path / "export.csv", "001,125000000,2500000000,3.3\nNA,350000000,7000000000,2.9")
    spec = tmp_path / "map.toml"
    spec.write_text(
        'family = "sweep"\nheader = false\n[columns]\nrun_name = "0"\nparams = "1"\ntokens = "2"\nloss = "3"\n', encoding="utf-8"
    )
    report = ingest_path(con, home, data, mapping=spec)
    assert report.rows_accepted == 2, report.error
    assert rows(con, "SELECT run_name FROM runs ORDER BY params") == [("001",), ("NA",)]


# --- 13. mapping mistakes beyond the listed ones also name their line -----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('family = "f"\nloss_name = ""\n[columns]\nparams = "n"\ntokens = "d"\nloss = "l"', "line 2: loss_name is empty"),
        ('family = "Bad Family"\n[columns]\nparams = "n"\ntokens = "d"\nloss = "l"', "line 1: family 'Bad Family' is not a key"),
    ],
)
def test_a_mapping_value_that_would_be_replaced_or_reject_every_row_names_its_line(con, home, tmp_path, text, expected):
    data = write_csv(tmp_path / "d.csv", "n,d,l\n1e8,2e9,3.1")
    spec = tmp_path / "map.toml"
    spec.write_text(text + "\n", encoding="utf-8")
    report = ingest_path(con, home, data, mapping=spec)
    assert report.status == "failed" and report.error.startswith("mapping map.toml, "), report.error
    assert expected in report.error, report.error

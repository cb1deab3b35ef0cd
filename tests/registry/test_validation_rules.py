"""Every validation rule rejects (or flags) a bad row with a reason, and keeps the good rows."""

from __future__ import annotations

import json

import pandera.polars as pa
import polars as pl
import pytest

from registry.adapters.base import Batch, canonical
from registry.ingest import ingest_path
from registry.validate import validate
from schemas.runs import IncomingPoint
from tests.conftest import rows, write_csv

GOOD = "fam,good,1e8,2e9,3.1"


def ingest_lines(con, home, tmp_path, *lines, header="family,run_name,params,tokens,loss"):
    path = write_csv(tmp_path / "runs.csv", "\n".join([header, GOOD, *lines]))
    report = ingest_path(con, home, path)
    assert report.status == "ingested" and report.conserved
    return report


def reasons_of(con, report):
    return [r for (rs,) in rows(con, "SELECT reasons FROM rejects WHERE source_id = ? ORDER BY row_number", [report.source_id]) for r in rs]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("fam,neg,-1e8,2e9,3.1", "params = -100000000.0 must be greater than 0"),
        ("fam,zero,1e8,0,3.1", "tokens = 0.0 must be greater than 0"),
        ("fam,nan,NaN,2e9,3.1", "params is missing"),
        ("fam,inf,1e8,inf,3.1", "tokens = inf must be a finite number"),
        ("fam,lossinf,1e8,2e9,inf", "loss = inf must be a finite number"),
        ("fam,loss0,1e8,2e9,0", "loss = 0.0 must be greater than 0"),
        ("fam,loss99,1e8,2e9,99", "loss = 99.0 is above 20"),
        ("fam,log10,1e8,11.3,3.1", "tokens = 11.3 is below 1,000: looks like a log10 value"),
        ("fam,huge,1e16,2e9,3.1", "params = 1e+16 is above 1e15, more parameters than any trained model"),
        ("fam,corpus,1e8,1e18,3.1", "tokens = 1e+18 is above 1e17, more tokens than any training corpus"),
        ("fam,tinyloss,1e8,2e9,0.0001", "loss = 0.0001 is below 0.001: not a cross-entropy in nats"),
        ("fam,noloss,1e8,2e9,", "loss is missing"),
        ("Bad Family,x,1e8,2e9,3.1", "did you mean 'bad-family'?"),
        ("fam,text,lots,2e9,3.1", "params (column 'params') = lots cannot be read"),
    ],
)
def test_a_bad_value_rejects_its_row_with_a_reason(con, home, tmp_path, line, expected):
    report = ingest_lines(con, home, tmp_path, line)
    assert (report.rows_accepted, report.rows_rejected) == (1, 1)
    assert any(expected in reason for reason in reasons_of(con, report)), reasons_of(con, report)


def test_a_rejected_row_is_stored_verbatim(con, home, tmp_path):
    report = ingest_lines(con, home, tmp_path, "fam,bad,-5,2e9,3.1")
    (raw, row_number) = rows(con, "SELECT raw, row_number FROM rejects WHERE source_id = ?", [report.source_id])[0]
    assert row_number == 2
    assert json.loads(raw) == {"family": "fam", "run_name": "bad", "params": "-5.0", "tokens": "2000000000.0", "loss": "3.1"}


def test_every_reason_of_a_row_is_recorded(con, home, tmp_path):
    report = ingest_lines(con, home, tmp_path, "fam,bad,-5,11.3,99")
    reasons = reasons_of(con, report)
    assert len(reasons) == 3
    assert {r.split(" ")[0] for r in reasons} == {"params", "tokens", "loss"}


def test_compute_far_from_6nd_is_flagged_not_corrected(con, home, tmp_path):
    header = "family,run_name,params,tokens,flops,loss"
    path = write_csv(tmp_path / "c.csv", f"{header}\nfam,close,1e8,2e9,1.3e18,3.1\nfam,far,1e8,2e9,5e18,3.1")
    ingest_path(con, home, path)
    got = dict(rows(con, "SELECT run_name, flags FROM runs"))
    assert got == {"close": [], "far": ["compute_mismatch"]}
    (flops,) = rows(con, "SELECT flops FROM runs WHERE run_name = 'far'")[0]
    assert flops == 5e18


def test_compute_is_derived_as_6nd_and_marked_when_absent(con, home, tmp_path):
    ingest_lines(con, home, tmp_path)
    flops, derived = rows(con, "SELECT flops, flops_derived FROM runs")[0]
    assert flops == pytest.approx(6 * 1e8 * 2e9) and derived


def test_a_diverged_loss_is_kept_and_flagged(con, home, tmp_path):
    report = ingest_lines(con, home, tmp_path, "fam,diverged,1e8,2e9,7.5")
    assert report.rows_rejected == 0
    assert rows(con, "SELECT flags FROM runs WHERE run_name = 'diverged'")[0][0] == ["diverged"]


def test_a_row_repeated_within_a_file_is_rejected_naming_the_first(con, home, tmp_path):
    report = ingest_lines(con, home, tmp_path, GOOD)
    assert (report.rows_accepted, report.rows_rejected) == (1, 1)
    assert reasons_of(con, report) == ["repeats row 1 of this file (same family, run, step and loss name); remove one of them"]


def _batch_of(points: pl.DataFrame) -> Batch:
    points = canonical(points.with_row_index("row_number", offset=1))
    return Batch(points=points, raw=points, rows_read=points.height)


def test_the_rows_rejected_are_exactly_those_pandera_fails_when_given_the_whole_frame():
    """validate() has pandera report on the points failing a one-pass check; pandera on every point finds the same rows."""
    good = {
        "family": "fam", "run_name": "r", "params": 1e8, "params_non_embedding": 9e7, "tokens": 2e9, "unique_tokens": 2e9,
        "flops": 1.2e18, "loss": 3.1, "loss_name": "val", "step": 5,
    }
    bad_values = [
        ("params", -1.0), ("params", float("nan")), ("params", None), ("params", 1e16), ("params", float("inf")),
        ("tokens", 0.0), ("tokens", 11.3), ("flops", -3.0), ("flops", float("-inf")), ("loss", 99.0), ("loss", 0.0),
        ("loss", None), ("step", -1), ("family", "Bad Family"), ("family", None), ("loss_name", ""),
        ("params_non_embedding", 0.0), ("unique_tokens", 5.0),
    ]
    records = [dict(good, run_name=f"r{i}") for i in range(200)]
    for i, (column, value) in enumerate(bad_values):
        records[7 * i + 3][column] = value
    batch = _batch_of(pl.DataFrame(records, infer_schema_length=None))

    accepted, rejects = validate(batch)

    with pytest.raises(pa.errors.SchemaErrors) as whole:
        IncomingPoint.validate(batch.points, lazy=True)
    pandera_rows = set(batch.points.get_column("row_number").gather(whole.value.failure_cases.get_column("index")).to_list())
    assert pandera_rows == {7 * i + 4 for i in range(len(bad_values))}  # row numbers count from 1
    assert set(rejects.get_column("row_number").to_list()) == pandera_rows
    assert accepted.height == 200 - len(bad_values)
    assert rejects.group_by("row_number").len().height == len(bad_values)  # every bad row has its reason(s)
    # pandera's report is read as before: a NaN is missing, once (not also "not finite"); a bad family is named
    reasons = dict(rejects.group_by("row_number").agg("reason").iter_rows())
    assert reasons[7 * 1 + 4] == ["params is missing (NaN); give a finite number"]
    assert any("did you mean 'bad-family'?" in reason for reason in reasons[7 * 13 + 4])


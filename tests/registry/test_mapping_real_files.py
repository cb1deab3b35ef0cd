"""Mappings that fit real files (issue 11): run identity from several columns, the collision message,
perplexities through ln, FLOPs in other units, a where filter, each mistake named at its mapping line.

The collision fixture is shaped like the issue's case: several runs per model size, each row a
checkpoint, runs told apart only by two columns together (duration and learning rate).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from registry.adapters.mapping import MappingProblem, load_mapping, read_with_mapping
from registry.ingest import ingest_path
from tests.conftest import rows, write_csv

SIZES = (50_000_000, 100_000_000, 200_000_000)
DURATIONS = (200, 400)  # total steps of a run
LRS = (0.002, 0.004)
TOKENS_PER_STEP = 1_000_000


def _loss(n: int, step: int, total: int, lr: float) -> float:
    """A distinct loss for every (run, step): no two runs share a checkpoint's loss."""
    return round(2.0 + 300 / n**0.3 + 40 / (step * TOKENS_PER_STEP) ** 0.25 + 0.01 * total / 100 + 5 * lr, 9)


def sweep_file(tmp_path: Path) -> Path:
    """12 runs (3 sizes x 2 durations x 2 learning rates), a checkpoint every 100 steps: 36 rows."""
    lines = ["model,N,D,step,total_steps,peak_lr,eval_loss"]
    for n in SIZES:
        for total in DURATIONS:
            for lr in LRS:
                for step in range(100, total + 1, 100):
                    lines.append(f"m{n // 1_000_000},{n},{step * TOKENS_PER_STEP},{step},{total},{lr},{_loss(n, step, total, lr)}")
    return write_csv(tmp_path / "sweep.csv", "\n".join(lines))


def mapping_file(tmp_path: Path, text: str, name: str = "map.toml") -> Path:
    path = tmp_path / name
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


BASE = """
family = "sweep"
loss_name = "val"
{extra}
[columns]
params = "N"
tokens = "D"
step = "step"
loss = "eval_loss"
"""


def test_colliding_runs_are_rejected_naming_the_rows_and_the_columns_that_tell_them_apart(con, home, tmp_path):
    report = ingest_path(con, home, sweep_file(tmp_path), mapping=mapping_file(tmp_path, BASE.format(extra="")))
    # Independent count: rows 1-2, 3-4, 5-8, 9-12 are the four 50M runs, so step 100 is rows 1, 3, 5, 9. At steps
    # 100 and 200 all four runs of a size collide (12 rows per size); at 300
    # and 400 the two 400-step runs do (4 rows per size); nothing is unique: 36 rows, all rejected.
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (36, 0, 36)
    reasons = dict(rows(con, "SELECT row_number, reasons[1] FROM rejects WHERE source_id = ?", [report.source_id]))
    first = reasons[1]
    assert "rows 1, 3, 5, 9 of this file have the same family, run name 'N=50000000', step 100" in first
    assert "they are different runs, not repeats" in first
    assert "Columns whose values differ between them: 'total_steps', 'peak_lr'" in first
    assert 'run_name = ["N", "total_steps", "peak_lr"]' in first or 'run_name = ["N", "peak_lr", "total_steps"]' in first
    assert not any("repeats row" in reason for reason in reasons.values())


def test_with_the_composite_identity_every_distinct_run_and_step_is_accepted(con, home, tmp_path):
    extra = 'run_name = ["N", "total_steps", "peak_lr"]'
    report = ingest_path(con, home, sweep_file(tmp_path), mapping=mapping_file(tmp_path, BASE.format(extra=extra)))
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (36, 36, 0)
    runs = rows(con, "SELECT run_name, params, final_step, loss FROM runs ORDER BY run_name")
    assert len(runs) == len(SIZES) * len(DURATIONS) * len(LRS)
    by_name = {name: (n, step, loss) for name, n, step, loss in runs}
    assert by_name["N=50000000,total_steps=400,peak_lr=0.002"] == (50_000_000, 400, _loss(50_000_000, 400, 400, 0.002))
    # every run keeps its whole curve
    assert rows(con, "SELECT count(*) FROM run_points") == [(36,)]


def test_a_template_names_runs_from_columns(tmp_path):
    extra = 'run_name = "{model}-{total_steps}s-lr{peak_lr}"'
    batch = read_with_mapping(sweep_file(tmp_path), load_mapping(mapping_file(tmp_path, BASE.format(extra=extra))))
    assert batch.points.get_column("run_name").unique().sort().to_list()[:2] == ["m100-200s-lr0.002", "m100-200s-lr0.004"]
    assert batch.points.get_column("run_name").n_unique() == 12


SPREADSHEET = """
Name,State,Params,D,C4 Eval PPL,total train ZFLOPs,compute_pf_days
a,finished,12M,2.1e8,178.767,0.0152,0.176
b,crashed,35M,4.2e8,90.5,0.0882,1.02
c,finished,2.8B,5.6e10,12.25,941,10891
"""


def test_perplexity_units_suffixes_and_a_filter_on_a_spreadsheet_export(con, home, tmp_path):
    data = write_csv(tmp_path / "sheet.csv", SPREADSHEET)
    mapping = mapping_file(tmp_path, """
family = "sheet"
loss_name = "c4"
where = 'State == "finished"'
[columns]
run_name = "Name"
params = "Params"
tokens = "D"
loss = "C4 Eval PPL"
flops = "total train ZFLOPs"
[transforms]
loss = "ln"
flops = "zflops"
""")
    report = ingest_path(con, home, data, mapping=mapping)
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (3, 2, 1)
    got = {name: (n, c, loss) for name, n, c, loss in rows(con, "SELECT run_name, params, flops, loss FROM runs")}
    assert got["a"] == pytest.approx((12e6, 0.0152e21, math.log(178.767)))
    assert got["c"] == pytest.approx((2.8e9, 941e21, math.log(12.25)))
    assert rows(con, "SELECT reasons FROM rejects") == [(["left out by the mapping's where (State == \"finished\"): State = crashed"],)]


def test_pflop_days_are_flops_of_a_petaflop_per_second_day(tmp_path):
    data = write_csv(tmp_path / "sheet.csv", SPREADSHEET)
    mapping = mapping_file(tmp_path, """
family = "sheet"
[columns]
params = "Params"
tokens = "D"
loss = "C4 Eval PPL"
flops = "compute_pf_days"
[transforms]
loss = "ln"
flops = "pflop_days"
""")
    flops = read_with_mapping(data, load_mapping(mapping)).points.get_column("flops").to_list()
    assert flops == pytest.approx([0.176 * 8.64e19, 1.02 * 8.64e19, 10891 * 8.64e19])


@pytest.mark.parametrize(
    ("lines", "line", "text"),
    [
        ('[columns]\nparams = "N"\n[transforms]\nparams = "ln"', 4, '"ln" turns a perplexity into a loss in nats; it applies to loss only'),
        ('[columns]\nloss = "L"\n[transforms]\nloss = "zflops"', 4, '"zflops" is a unit of compute; it applies to flops only'),
        ('where = "State = finished"', 1, "where: cannot read 'State = finished'"),
        ("where = 'N > \"big\"'", 1, "orders text; compare text with == or != only"),
        ('run_name = "plain"', 1, "names no column"),
        ('run_name = []', 1, "run_name lists no column"),
        ('run_name = ["a"]\n[columns]\nrun_name = "b"', 1, "run_name is given twice"),
        ("run_name = 5", 1, "run_name must be a list of column names"),
    ],
)
def test_each_mapping_mistake_names_its_line(tmp_path, lines, line, text):
    with pytest.raises(MappingProblem) as caught:
        load_mapping(mapping_file(tmp_path, 'family = "f"\n' + lines))
    assert f"map.toml, line {line + 1}" in str(caught.value)
    assert text in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "columns", "text"),
    [
        ('run_name = ["model", "seed"]', "", "line 2: run_name names column(s) not in the file: 'seed'"),
        ("where = 'Status == \"ok\"'", "", "line 2: where names column(s) not in the file: 'Status'"),
        ("", 'loss = "C4 Eval PPL"', 'loss reads \'C4 Eval PPL\', which is named as a perplexity'),
    ],
)
def test_rules_that_need_the_file_fail_it_naming_the_mapping_line(tmp_path, extra, columns, text):
    data = write_csv(tmp_path / "f.csv", "model,N,D,C4 Eval PPL,L\nm,1e8,2e9,20.5,3.0")
    loss = columns or 'loss = "L"'
    mapping = load_mapping(mapping_file(tmp_path, f'family = "f"\n{extra}\n[columns]\nparams = "N"\ntokens = "D"\n{loss}'))
    with pytest.raises(MappingProblem, match="map.toml") as caught:
        read_with_mapping(data, mapping)
    assert text in str(caught.value)


def test_a_run_identity_column_left_empty_rejects_the_row(con, home, tmp_path):
    data = write_csv(tmp_path / "f.csv", "model,seed,N,D,L\nm,1,1e8,2e9,3.0\nm,,1e8,2e9,3.1")
    mapping = mapping_file(tmp_path, 'family = "f"\nrun_name = ["model", "seed"]\n[columns]\nparams = "N"\ntokens = "D"\nloss = "L"')
    report = ingest_path(con, home, data, mapping=mapping)
    assert (report.rows_accepted, report.rows_rejected) == (1, 1)
    assert rows(con, "SELECT reasons[1] FROM rejects") == [("run_name: column 'seed' is empty in this row, so the run it belongs to is unknown",)]

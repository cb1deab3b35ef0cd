"""Each shipped published dataset, read by its adapter or mapping, gives the runs its paper describes."""

from __future__ import annotations

import json
import shutil

import pytest

from registry.ingest import ingest_path
from registry.published import BY_KEY, ingest_published
from tests.conftest import rows


def ingest(con, home, key):
    reports = ingest_published(con, home, BY_KEY[key])
    assert all(r.status == "ingested" for r in reports), [r.error for r in reports]
    return reports


def test_chinchilla_points_all_245_with_tokens_derived_from_compute(con, home):
    (report,) = ingest(con, home, "chinchilla")
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (245, 245, 0)
    n, c, derived, flops_derived = rows(
        con, "SELECT count(*), sum(flops), bool_and(tokens_derived), bool_or(flops_derived) FROM runs WHERE family = 'chinchilla'"
    )[0]
    assert n == 245 and derived and not flops_derived
    # D = C / 6N holds exactly for every point, as the provenance note says.
    (worst,) = rows(con, "SELECT max(abs(flops / (6 * params * tokens) - 1)) FROM runs WHERE family = 'chinchilla'")[0]
    assert worst < 1e-12


def test_chinchilla_svg_artefacts_are_kept_in_tags(con, home):
    ingest(con, home, "chinchilla")
    (tags,) = rows(con, "SELECT tags FROM runs WHERE family = 'chinchilla' LIMIT 1")[0]
    assert set(json.loads(tags)) == {"x", "y", "color", "hex_color"}


def test_isoflop_experiments_become_three_families_with_published_counts(con, home):
    ingest(con, home, "isoflops")
    counts = dict(rows(con, "SELECT family, count(*) FROM runs GROUP BY 1"))
    assert counts == {
        "isoflop-ml-scalefit-chinchilla": 124,
        "isoflop-epochai-chinchilla": 123,
        "isoflop-misfitting-fineweb-c4": 176,
    }


def test_gadre_models_split_by_training_set_with_all_eight_losses(con, home):
    (report,) = ingest(con, home, "gadre_overtraining")
    assert report.rows_read == 104 and report.rows_accepted == 104
    counts = dict(rows(con, "SELECT family, count(*) FROM runs GROUP BY 1"))
    assert set(counts) == {"gadre-c4", "gadre-rpj", "gadre-rw"} and sum(counts.values()) == 104
    (names,) = rows(con, "SELECT list_distinct(list(loss_name)) FROM runs")[0]
    assert names == ["val/c4"]
    per_run = rows(con, "SELECT count(*) FROM run_points GROUP BY run_id")
    assert {n for (n,) in per_run} == {8}


def test_gadre_fitted_loss_is_the_c4_validation_value_of_the_file(con, home, published):
    ingest(con, home, "gadre_overtraining")
    document = json.loads((published / "gadre_overtraining/models/rpj-d=96_l=8_h=4-0.5.json").read_text())
    c4 = [r["loss"] for r in document["results"] if any("c4_val" in p for p in r["val_data"])]
    loss, params, tokens = rows(con, "SELECT loss, params, tokens FROM runs WHERE run_name = 'rpj-d=96_l=8_h=4-0.5'")[0]
    assert loss == pytest.approx(c4[0], rel=1e-12)
    assert (params, tokens) == (document["hyperparameters"]["params"], document["hyperparameters"]["tokens"])


def test_olmo_ladder_curves_keep_eleven_losses_and_fit_c4(con, home):
    (report,) = ingest(con, home, "olmo_ladder")
    assert report.conserved
    (n_runs,) = rows(con, "SELECT count(*) FROM runs WHERE family = 'olmo2-ladder'")[0]
    assert n_runs == 30  # the six 3B curves take N from the ladder code's table (the shipped config lacks 3B)
    (names,) = rows(con, "SELECT count(DISTINCT loss_name) FROM run_points")[0]
    assert names == 11
    loss, step, name = rows(con, "SELECT loss, final_step, loss_name FROM runs WHERE run_name = '190M-1xC'")[0]
    assert (loss, step, name) == (pytest.approx(3.600973129272461), 7272, "val/c4_en")


def test_olmo_ladder_rows_without_a_parameter_count_are_rejected_with_the_fix(con, home, published, tmp_path):
    ladder = tmp_path / "olmo_ladder"
    shutil.copytree(published / "olmo_ladder", ladder)
    shutil.copy(ladder / "ladder-runs/190M-1xC.csv", ladder / "ladder-runs/5B-1xC.csv")  # a size nobody lists
    report = ingest_path(con, home, ladder, name="ladder-copy", kind="published", adapter="olmo_ladder")
    reasons = rows(con, "SELECT DISTINCT member, reasons[1] FROM rejects WHERE source_id = ?", [report.source_id])
    assert {member for member, _ in reasons} == {"5B-1xC.csv"}
    assert all("configs/final.json" in reason for _, reason in reasons)


def test_gemstones_curves_give_22_runs_of_175_points(con, home):
    reports = ingest(con, home, "gemstones")
    assert [r.rows_read for r in reports] == [3850, 28]
    (n,) = rows(con, "SELECT count(*) FROM runs WHERE family = 'gemstones'")[0]
    assert n == 22
    assert {c for (c,) in rows(con, "SELECT count(*) FROM run_points GROUP BY run_id")} == {175}
    # the run's D and loss are those of its last step
    last = rows(
        con,
        "SELECT r.tokens = p.tokens AND r.loss = p.loss FROM runs r JOIN run_points p USING (run_id) "
        "WHERE p.step = r.final_step AND r.family = 'gemstones'",
    )
    assert len(last) == 22 and all(ok for (ok,) in last)

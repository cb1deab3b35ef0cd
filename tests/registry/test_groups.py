"""Family groups: declared in TOML, refitted on change, published per member, compared with the members alone."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from registry.db import writer
from registry.exports import write_exports
from registry.group_refit import group_comparison, refit_group, refit_groups, stale_group_members
from registry.groups import GroupSettingsProblem, load_groups, read_group_file
from registry.home import Home
from registry.ingest import ingest_path
from registry.planning import allocate, coefficients, history
from registry.refit import stale_families
from registry.refit_batch import refit_families
from registry.settings import FitSettings
from tests.synthetic import HOFFMANN, chinchilla_runs, write_runs

FAST = FitSettings(bootstrap_resamples=100, other_law_resamples=10, profile_points=10)
#: three corpora with one irreducible loss, their own terms (the known truth); "odd" has another E and exponents
TRUTHS = {
    "web": HOFFMANN,
    "code": {**HOFFMANN, "A": 250.0, "B": 800.0, "alpha": 0.30, "beta": 0.32},
    "books": {**HOFFMANN, "A": 600.0, "B": 300.0, "alpha": 0.38, "beta": 0.26},
    "odd": {"E": 2.6, "A": 90.0, "B": 3000.0, "alpha": 0.22, "beta": 0.40},
}
TRIO = 'members = ["web", "code", "books"]\nshared = ["E"]\n'
JOINT = "chinchilla+joint:trio"


def _write_group(home: Home, name: str, text: str) -> Path:
    folder = home.root / "groups"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A registry with four synthetic families, each refitted alone, then the group ``trio`` (sharing E) and the
    group ``mismatch`` (web and odd, sharing E and both exponents: a bad choice) refitted."""
    root = tmp_path_factory.mktemp("groups")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCALEREG_HOME", str(root / "home"))
        home = Home.from_env().ensure()
        with writer(home.registry) as con:
            for i, (family, truth) in enumerate(TRUTHS.items()):
                ingest_path(con, home, write_runs(root / f"{family}.csv", chinchilla_runs(family, truth=truth, seed=i)))
        open_writer = partial(writer, home.registry)
        refit_families(open_writer, list(TRUTHS), FAST, n_workers=1)
        _write_group(home, "trio", TRIO)
        _write_group(home, "mismatch", 'members = ["web", "odd"]\nshared = ["E", "alpha", "beta"]\n')
        groups = load_groups(home)
        first = {g.group: g for g in refit_groups(open_writer, list(TRUTHS), groups, FAST)}
        yield home, open_writer, groups, first


def test_every_member_gets_a_published_joint_fit_with_one_shared_e_near_the_truth(lab):
    home, _, _, first = lab
    assert first["trio"].skipped is None and len(first["trio"].fit_ids) == 3
    with writer(home.registry) as con:
        joint = {c["family"]: c for c in coefficients(con, law=JOINT)}
    assert set(joint) == {"web", "code", "books"}
    values = {c["params"]["E"] for c in joint.values()}
    assert len(values) == 1
    assert values.pop() == pytest.approx(HOFFMANN["E"], rel=0.05)
    for family, c in joint.items():
        lo, hi = c["ci"]["alpha"]
        assert lo <= TRUTHS[family]["alpha"] <= hi, (family, lo, hi)


def test_the_single_fit_stays_queryable_beside_the_group_fit(lab):
    home, *_ = lab
    with writer(home.registry) as con:
        laws = {c["law"] for c in coefficients(con, family="code")}
        entries = {e["law"] for e in history(con, "code")}
    assert {"chinchilla", JOINT} <= laws
    assert {"chinchilla", JOINT} <= entries


def test_the_joint_fit_records_its_group_faces_the_gates_and_allocates_with_a_verdict(lab):
    home, *_ = lab
    with writer(home.registry) as con:
        (diagnostics, checks) = con.execute(
            "SELECT diagnostics, checks FROM fits WHERE family = 'books' AND law = ?", [JOINT]
        ).fetchone()
        answer = allocate(con, "books", 1e22, law=JOINT)
        statuses = {s for (s,) in con.execute("SELECT DISTINCT status FROM allocations WHERE law = ?", [JOINT]).fetchall()}
    diagnostics, gates = json.loads(diagnostics), {g["name"] for g in json.loads(checks)}
    assert diagnostics["group"] == "trio" and diagnostics["shared"] == ["E"]
    assert {"design", "converged", "plausible", "extrapolation", "interval_width", "group_sharing"} <= gates
    assert answer["law"] == JOINT and answer["status"] in statuses and answer["n_opt"] > 0
    assert statuses and statuses <= {"trusted", "extrapolated", "unidentified", "approaches_disagree"}


def test_exports_carry_the_group_fits(lab):
    home, *_ = lab
    with writer(home.registry) as con:
        paths = write_exports(con, home)
    exported = json.loads(next(p for p in paths if p.name == "coefficients.json").read_text())
    assert {r["family"] for r in exported if r["law"] == JOINT} == {"web", "code", "books"}


def test_the_comparison_is_stored_and_flags_a_group_that_shares_what_it_should_not(lab):
    home, *_ = lab
    with writer(home.registry) as con:
        rows = group_comparison(con)
        (checks,) = con.execute("SELECT checks FROM fits WHERE family = 'odd' AND law = 'chinchilla+joint:mismatch'").fetchone()
    trio = rows.filter(rows["group_name"] == "trio")
    assert trio.height == 3 and trio["joint_error"].null_count() == 0 and trio["single_error"].null_count() == 0
    mismatch = rows.filter(rows["group_name"] == "mismatch")
    assert mismatch["group_worse"].to_list() == [True, True]
    (sharing,) = [g for g in json.loads(checks) if g["name"] == "group_sharing"]
    assert not sharing["passed"] and not sharing["blocking"]


def test_an_unchanged_group_is_not_refitted_and_its_members_stay_unchanged(lab):
    home, open_writer, groups, _ = lab
    again = refit_group(open_writer, groups["trio"], FAST)
    assert again.unchanged
    refits = refit_families(open_writer, ["web", "code", "books"], FAST, n_workers=1)
    assert all(not r.fitted for r in refits)
    with writer(home.registry) as con:
        assert not set(stale_families(con)) & {"web", "code", "books"}


def test_a_changed_group_is_refitted_as_a_new_version(lab):
    home, open_writer, _, _ = lab
    with writer(home.registry) as con:
        assert not set(stale_group_members(con, load_groups(home)))
    path = _write_group(home, "trio", TRIO.replace('["E"]', '["E", "beta"]'))
    with writer(home.registry) as con:
        assert set(stale_group_members(con, load_groups(home))) == {"web", "code", "books"}  # the sensor asks for these
    changed = refit_group(open_writer, read_group_file(path), FAST)
    assert len(changed.fit_ids) == 3 and all(fit_id.endswith("/v2") for fit_id in changed.fit_ids)
    with writer(home.registry) as con:
        versions = con.execute("SELECT count(*) FROM group_settings WHERE group_name = 'trio'").fetchone()[0]
        assert not set(stale_group_members(con, load_groups(home)))
    assert versions == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('members = ["a-b", "c"]\nshared = ["gamma"]\n', "shared: cannot share 'gamma'"),
        ('members = ["a", "a"]\nshared = ["E"]\n', "members: family 'a' is listed twice"),
        ('members = ["a", "b"]\nshared = ["E"]\nlaw = "kaplan"\n', "law: groups are fitted with chinchilla"),
        ('members = ["a", "b"]\nshared = ["E"]\ncolour = 1\n', "colour: unknown key"),
        ('shared = ["E"]\n', "members: missing"),
    ],
)
def test_a_group_file_mistake_names_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "g.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GroupSettingsProblem, match=f"g.toml: {message}"):
        read_group_file(path)


def test_the_shipped_gadre_group_shares_the_exponents_of_its_three_corpora():
    (gadre,) = [g for g in load_groups().values() if g.group == "gadre"]
    assert set(gadre.members) == {"gadre-c4", "gadre-rpj", "gadre-rw"}
    assert set(gadre.shared) == {"alpha", "beta"}

"""Family settings: declared in TOML, checked with messages naming file and key, versioned in the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.family_settings import (
    FamilySettings,
    FamilySettingsProblem,
    families_folder,
    load_family_settings,
    missing_exclusions,
    read_family_file,
    record_family_settings,
    settings_for,
    shipped_family_settings,
)
from registry.published import BY_KEY, PUBLISHED, ingest_published
from tests.conftest import rows

SHIPPED_FAMILIES = {family for source in PUBLISHED for family in source.families}


def write(folder: Path, family: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{family}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_settings_file_belongs_to_a_shipped_family():
    shipped = shipped_family_settings()
    assert set(shipped) == SHIPPED_FAMILIES
    assert all(s.source == f"data/published/families/{s.family}.toml" for s in shipped.values())
    assert all(s.description for s in shipped.values())


def test_the_declared_loss_is_the_loss_each_shipped_family_carries(con, home):
    for source in PUBLISHED:
        ingest_published(con, home, source)
    carried = dict(rows(con, "SELECT family, list_distinct(list(loss_name)) FROM runs GROUP BY family"))
    for family, settings in shipped_family_settings().items():
        assert carried[family] == [settings.loss_name], family


def test_chinchilla_drops_the_five_highest_losses_as_besiroglu_et_al_do():
    chinchilla = shipped_family_settings()["chinchilla"]
    assert chinchilla.exclude_top_loss == 5
    assert "Besiroglu" in chinchilla.exclude_top_loss_reason
    # the only shipped family that drops its highest losses (the refit applies it: tests/registry/test_refit.py)
    assert [f for f, s in shipped_family_settings().items() if s.exclude_top_loss] == ["chinchilla"]


def test_gadre_families_share_one_exponent_and_fit_c4_validation_loss():
    shipped = shipped_family_settings()
    for family in ("gadre-c4", "gadre-rpj", "gadre-rw"):
        assert shipped[family].shared_exponent and shipped[family].loss_name == "val/c4"
        assert set(shipped[family].distinct_from) == {"gadre-c4", "gadre-rpj", "gadre-rw"} - {family}
    assert not any(s.shared_exponent for f, s in shipped.items() if not f.startswith("gadre-"))


def test_a_family_without_a_file_gets_the_defaults():
    settings = settings_for("my-model-v1", shipped_family_settings())
    assert settings == FamilySettings(family="my-model-v1")
    assert (settings.fit_on, settings.bootstrap_unit, settings.exclude_top_loss) == ("auto", "auto", 0)
    assert (settings.budget_min, settings.budget_max) == (1e18, 1e27)
    assert not settings.shared_exponent and settings.source is None


def test_a_users_file_replaces_the_shipped_one(home):
    write(families_folder(home), "chinchilla", 'exclude_top_loss = { count = 3, reason = "my choice" }\n')
    chinchilla = load_family_settings(home)["chinchilla"]
    assert (chinchilla.exclude_top_loss, chinchilla.description) == (3, "")
    assert chinchilla.source == str(families_folder(home) / "chinchilla.toml")
    assert load_family_settings(home)["gadre-c4"].shared_exponent  # the other shipped files still apply


def test_every_field_is_read(tmp_path):
    path = write(tmp_path, "full", """
description = "all keys"
loss_name = "val/c4"
fit_on = "checkpoints"
bootstrap_unit = "run"
exclude_top_loss = { count = 2, reason = "two outliers" }
budgets = { min = 1e19, max = 1e25 }

[constraints]
shared_exponent = true
fixed = { E = 1.69 }
bounds = { alpha = [0.1, 1.0] }

[[exclude]]
run = "run-7"
reason = "diverged after step 900"

[distinct_from]
other-family = "different data"
""")
    settings = read_family_file(path)
    assert settings == FamilySettings(
        family="full", description="all keys", loss_name="val/c4", fit_on="checkpoints", bootstrap_unit="run",
        exclude_top_loss=2, exclude_top_loss_reason="two outliers", exclude=settings.exclude, shared_exponent=True,
        fixed={"E": 1.69}, bounds={"alpha": (0.1, 1.0)}, budget_min=1e19, budget_max=1e25,
        distinct_from={"other-family": "different data"}, source=str(path),
    )
    assert [(e.run, e.reason) for e in settings.exclude] == [("run-7", "diverged after step 900")]
    assert settings.excluded_runs == {"run-7"}


def test_the_version_depends_on_the_settings_not_on_how_they_are_written(tmp_path):
    one = read_family_file(write(tmp_path / "a", "fam", """
fit_on = "final"
constraints = { fixed = { E = 2 }, shared_exponent = true }
budgets = { max = 1e26 }
"""))
    rewritten = read_family_file(write(tmp_path / "b", "fam", """
# the same settings in another order and spelling
budgets.max = 100000000000000000000000000.0
fit_on = "final"
[constraints]
fixed.E = 2.0
shared_exponent = true
"""))
    other = read_family_file(write(tmp_path / "c", "fam", """
fit_on = "final"
constraints = { fixed = { E = 2.01 }, shared_exponent = true }
budgets = { max = 1e26 }
"""))
    assert rewritten.settings_version == one.settings_version and rewritten.source != one.source
    assert other.settings_version != one.settings_version
    assert len(one.settings_version) == 12 and json.loads(one.canonical_json()) == one.canonical()


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        ('fit_too = "final"\n', "fit_too", "unknown key"),
        ('fit_on = "sometimes"\n', "fit_on", "'final', 'checkpoints' or 'auto'"),
        ('bootstrap_unit = 3\n', "bootstrap_unit", "'run', 'point' or 'auto'"),
        ("exclude_top_loss = 5\n", "exclude_top_loss", "needs a reason"),
        ('exclude_top_loss = { count = 0, reason = "x" }\n', "exclude_top_loss.count", "greater than or equal to 1"),
        ("[constraints]\nbounds = { alpha = [1.0, 0.1] }\n", "constraints.bounds", "alpha: the lower end (1) must be below"),
        ("[constraints]\nbounds = { alpha = [0.1] }\n", "constraints.bounds.alpha", "at least 2 items"),
        ("[constraints]\nfixed = { gamma = 1.0 }\n", "constraints.fixed", "unknown parameter 'gamma'"),
        ("[constraints]\nfixed = { E = nan }\n", "constraints.fixed.E", "finite number"),
        ("[constraints]\nbounds = { beta = [0.1, inf] }\n", "constraints.bounds.beta", "finite number"),
        ('[constraints]\nfixed = { E = "1.69" }\n', "constraints.fixed.E", "valid number"),
        ("[constraints]\nfixed = { E = 1.7 }\nbounds = { E = [1.0, 2.0] }\n", "constraints", "both fixed and bounded"),
        ("[constraints]\nshared_exponent = true\nfixed = { alpha = 0.3, beta = 0.4 }\n", "constraints", "alpha = beta"),
        ("[constraints]\nshared = true\n", "constraints.shared", "unknown key"),
        ('[[exclude]]\nrun = "a"\n', "exclude (entry 1).reason", "Field required"),
        ('[[exclude]]\nrun = "a"\nreason = "x"\n[[exclude]]\nrun = "a"\nreason = "y"\n', "exclude", "listed twice"),
        ("budgets = { min = 1e27, max = 1e18 }\n", "budgets", "must not exceed max"),
        ("budgets = { min = -1.0 }\n", "budgets.min", "greater than 0"),
        ("budgets = { max = inf }\n", "budgets.max", "finite number"),
        ('[distinct_from]\n"Not A Key" = "x"\n', "distinct_from", "is not a key"),
        ('description = "unterminated\n', "not valid TOML", "fix that line"),
    ],
)
def test_a_mistake_names_the_file_the_key_and_the_fix(tmp_path, text, key, fix):
    path = write(tmp_path, "my-family", text)
    with pytest.raises(FamilySettingsProblem) as raised:
        read_family_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {key}") and fix in message


def test_a_file_name_that_is_not_a_family_key_is_refused(tmp_path):
    path = write(tmp_path, "My_Family", "")
    with pytest.raises(FamilySettingsProblem, match="the file name must be the family key.*my-family"):
        read_family_file(path)


def test_a_broken_user_file_stops_loading_and_names_itself(home):
    path = write(families_folder(home), "gadre-c4", "[constraints]\nshared_exponent = 1\n")
    with pytest.raises(FamilySettingsProblem, match=f"^{path}: constraints.shared_exponent: "):
        load_family_settings(home)


def test_settings_are_recorded_once_per_version_and_keep_their_history(con, home):
    shipped = load_family_settings(home)
    assert len(record_family_settings(con, shipped)) == len(shipped)
    assert record_family_settings(con, shipped) == []  # unchanged: nothing appended

    path = write(families_folder(home), "gadre-c4", '[constraints]\nfixed = { E = 1.9 }\n')
    changed = load_family_settings(home)
    (recorded,) = record_family_settings(con, changed)
    assert recorded.family == "gadre-c4" and recorded.source == str(path)
    path.unlink()
    (back,) = record_family_settings(con, load_family_settings(home))
    assert back == shipped["gadre-c4"]

    history = rows(con, "SELECT version, source FROM family_settings WHERE family = 'gadre-c4' ORDER BY loaded_at")
    assert [v for v, _ in history] == [shipped["gadre-c4"].settings_version, recorded.settings_version,
                                       shipped["gadre-c4"].settings_version]
    (stored,) = rows(con, "SELECT settings FROM family_settings_latest WHERE family = 'gadre-c4'")[0]
    assert json.loads(stored) == shipped["gadre-c4"].canonical()
    (n_families,) = rows(con, "SELECT count(*) FROM family_settings_latest")[0]
    assert n_families == len(shipped)


def test_excluded_runs_the_family_does_not_have_are_named(con, home):
    ingest_published(con, home, BY_KEY["gadre_overtraining"])
    write(families_folder(home), "gadre-rpj", """
[[exclude]]
run = "rpj-d=96_l=8_h=4-0.5"
reason = "a real run"
[[exclude]]
run = "rpj-d=96_l=8_h=4-0.75"
reason = "a misspelt one"
""")
    settings = load_family_settings(home)["gadre-rpj"]
    assert missing_exclusions(con, settings) == ("rpj-d=96_l=8_h=4-0.75",)
    assert missing_exclusions(con, settings_for("gadre-rpj", {})) == ()

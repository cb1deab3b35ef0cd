"""Per-family fit settings, declared in TOML rather than coded, and versioned with the fits they shape.

A family's paper often prescribes how to fit it (Besiroglu et al. drop the five highest-loss
Chinchilla points; Gadre et al. share one exponent between N and D). Those choices live in one
TOML file per family, named for it: ``data/published/families/<family>.toml`` for the shipped
families and ``$SCALEREG_HOME/families/<family>.toml`` for a user's (a user's file replaces the
shipped one of the same family whole). The shipped files sit in one folder of their own, not inside
a dataset folder, because a folder ingested whole (the OLMo ladder) is identified by the hash of
everything in it: a settings edit there would look like new data.

Every distinct version of a family's settings is kept in the ``family_settings`` table; the
version (a hash of the canonical JSON) is part of a fit's code version, so changing a family's
settings refits it and shows in its history.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import duckdb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from laws.catalog import LAWS
from registry.db import one
from registry.home import PUBLISHED_DIR, Home
from registry.ingest import display_path
from schemas.families import family_problem

#: The folder holding one ``<family>.toml`` per family, under data/published/ and under a home.
FAMILIES_FOLDER = "families"
#: Budgets of the allocation table when a family does not narrow them (FLOPs).
DEFAULT_BUDGETS = (1e18, 1e27)
#: Parameter names a constraint may name: every parameter of every law in the catalogue.
PARAMETER_NAMES = tuple(sorted({name for law in LAWS.values() for name in law.param_names}))

FitOn = Literal["final", "checkpoints", "auto"]
ModelT = TypeVar("ModelT", bound=BaseModel)
BootstrapUnit = Literal["run", "point", "auto"]
Text = Annotated[str, Field(min_length=1)]


class FamilySettingsProblem(ValueError):
    """A family settings file that cannot be used; the message names the file and the key."""


#: A finite number (TOML also spells nan and inf).
Number = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Exclusion(_Model):
    run: Text
    reason: Text


class _TopLoss(_Model):
    count: Annotated[int, Field(ge=1)]
    reason: Text


class _Budgets(_Model):
    min: Positive = DEFAULT_BUDGETS[0]
    max: Positive = DEFAULT_BUDGETS[1]

    @model_validator(mode="after")
    def _ordered(self) -> _Budgets:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not exceed max ({self.max:g})")
        return self


def _known_parameters(names: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(names) - set(PARAMETER_NAMES))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; known: {', '.join(PARAMETER_NAMES)}")
    return names


class _Constraints(_Model):
    shared_exponent: bool = False
    fixed: dict[str, Number] = {}
    bounds: dict[str, Annotated[list[Number], Field(min_length=2, max_length=2)]] = {}

    @field_validator("fixed")
    @classmethod
    def _fixed(cls, fixed: dict[str, float]) -> dict[str, float]:
        return _known_parameters(fixed)

    @field_validator("bounds")
    @classmethod
    def _bounds(cls, bounds: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, (lo, hi) in _known_parameters(bounds).items():
            if lo >= hi:
                raise ValueError(f"{name}: the lower end ({lo:g}) must be below the upper end ({hi:g})")
        return bounds

    @model_validator(mode="after")
    def _consistent(self) -> _Constraints:
        both = sorted(set(self.fixed) & set(self.bounds))
        if both:
            raise ValueError(f"{both[0]} is both fixed and bounded; keep one of the two")
        if self.shared_exponent and {"alpha", "beta"} <= set(self.fixed) and self.fixed["alpha"] != self.fixed["beta"]:
            raise ValueError("shared_exponent = true means alpha = beta, but fixed gives them different values")
        return self


class FamilyFile(_Model):
    """Exactly the keys a family settings file may hold (see the README, "Family settings")."""

    description: str = ""
    loss_name: Text | None = None
    fit_on: FitOn = "auto"
    bootstrap_unit: BootstrapUnit = "auto"
    exclude_top_loss: _TopLoss | None = None
    exclude: list[_Exclusion] = []
    constraints: _Constraints = _Constraints()
    budgets: _Budgets = _Budgets()
    distinct_from: dict[str, Text] = {}

    @field_validator("distinct_from")
    @classmethod
    def _families(cls, distinct_from: dict[str, str]) -> dict[str, str]:
        for other in distinct_from:
            if problem := family_problem(other):
                raise ValueError(problem)
        return distinct_from

    @field_validator("exclude")
    @classmethod
    def _once_each(cls, exclude: list[_Exclusion]) -> list[_Exclusion]:
        runs = [item.run for item in exclude]
        repeated = sorted({run for run in runs if runs.count(run) > 1})
        if repeated:
            raise ValueError(f"run {repeated[0]!r} is listed twice")
        return exclude


@dataclass(frozen=True)
class Exclusion:
    """A run left out of the family's fits, and why."""

    run: str
    reason: str


class VersionedSettings:
    """Declared settings stored by version (:func:`record_versions`): the version is a hash of ``canonical()``."""

    def canonical(self) -> dict[str, Any]:
        raise NotImplementedError

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))

    @property
    def settings_version(self) -> str:
        """A stable short hash of the canonical JSON: equal settings, equal version, on any machine."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]


@dataclass(frozen=True)
class FamilySettings(VersionedSettings):
    """How a family is fitted. A family without a settings file gets these defaults.

    ``source`` says where the settings were read (None: defaults); it is not part of the version,
    so moving a file does not refit.
    """

    family: str
    description: str = ""
    loss_name: str | None = None
    fit_on: str = "auto"
    bootstrap_unit: str = "auto"
    exclude_top_loss: int = 0
    exclude_top_loss_reason: str = ""
    exclude: tuple[Exclusion, ...] = ()
    shared_exponent: bool = False
    fixed: Mapping[str, float] = field(default_factory=dict)
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    budget_min: float = DEFAULT_BUDGETS[0]
    budget_max: float = DEFAULT_BUDGETS[1]
    distinct_from: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None

    def canonical(self) -> dict[str, Any]:
        """The settings as JSON-ready data with a fixed order: what the version hashes and the table stores."""
        return {
            "description": self.description,
            "loss_name": self.loss_name,
            "fit_on": self.fit_on,
            "bootstrap_unit": self.bootstrap_unit,
            "exclude_top_loss": self.exclude_top_loss,
            "exclude_top_loss_reason": self.exclude_top_loss_reason,
            "exclude": [{"run": e.run, "reason": e.reason} for e in sorted(self.exclude, key=lambda e: e.run)],
            "shared_exponent": self.shared_exponent,
            "fixed": {name: float(value) for name, value in sorted(self.fixed.items())},
            "bounds": {name: [float(lo), float(hi)] for name, (lo, hi) in sorted(self.bounds.items())},
            "budget_min": float(self.budget_min),
            "budget_max": float(self.budget_max),
            "distinct_from": [{"family": f, "reason": r} for f, r in sorted(self.distinct_from.items())],
        }

    @property
    def excluded_runs(self) -> frozenset[str]:
        return frozenset(e.run for e in self.exclude)


def _where(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the dotted TOML key a person would look for."""
    parts = [str(p) for p in loc if not isinstance(p, int) and p != "[key]"]
    indexes = [p for p in loc if isinstance(p, int)]
    key = ".".join(parts)
    if parts and parts[0] == "exclude" and indexes:
        key = f"exclude (entry {indexes[0] + 1})" + ("." + ".".join(parts[1:]) if len(parts) > 1 else "")
    return key


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        loc = error["loc"]
        if len(loc) == 1:
            return f"unknown key; known keys: {', '.join(FamilyFile.model_fields)}"
        return "unknown key"
    if error["type"] == "model_type" and error["loc"] == ("exclude_top_loss",):
        return 'needs a reason: write exclude_top_loss = { count = 5, reason = "why these runs are dropped" }'
    text = str(error["msg"])
    return text.removeprefix("Value error, ")


def read_declared(
    path: Path, model: type[ModelT], *, problem: type[ValueError], kind: str,
    where: Callable[[tuple], str], message: Callable[[Mapping[str, Any]], str],
) -> ModelT:
    """Read a TOML file named for its key (a family's, a group's) and validate it as ``model``; every mistake
    is a ``problem`` naming the file and the key (``where`` spells a location, ``message`` the error)."""
    shown = display_path(path)
    if bad := family_problem(path.stem):
        raise problem(f"{shown}: the file name must be the {kind} key: {bad}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise problem(f"{shown}: not UTF-8 text; save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as error:
        raise problem(f"{shown}: not valid TOML ({error}); fix that line.") from None
    try:
        return model.model_validate(data)
    except ValidationError as invalid:
        error = invalid.errors()[0]
        key = where(error["loc"])
        raise problem(f"{shown}: {key + ': ' if key else ''}{message(error)}") from None


def read_family_file(path: Path) -> FamilySettings:
    """Read and check one ``<family>.toml``; every mistake names the file and the key."""
    declared = read_declared(path, FamilyFile, problem=FamilySettingsProblem, kind="family", where=_where, message=_message)
    family, shown = path.stem, display_path(path)
    top = declared.exclude_top_loss
    return FamilySettings(
        family=family,
        description=declared.description,
        loss_name=declared.loss_name,
        fit_on=declared.fit_on,
        bootstrap_unit=declared.bootstrap_unit,
        exclude_top_loss=top.count if top else 0,
        exclude_top_loss_reason=top.reason if top else "",
        exclude=tuple(Exclusion(run=e.run, reason=e.reason) for e in declared.exclude),
        shared_exponent=declared.constraints.shared_exponent,
        fixed=dict(declared.constraints.fixed),
        bounds={name: (lo, hi) for name, (lo, hi) in declared.constraints.bounds.items()},
        budget_min=declared.budgets.min,
        budget_max=declared.budgets.max,
        distinct_from=dict(declared.distinct_from),
        source=shown,
    )


def families_folder(home: Home) -> Path:
    """Where a user's family settings files live: ``$SCALEREG_HOME/families/``."""
    return home.root / FAMILIES_FOLDER


def _read_folder(folder: Path) -> dict[str, FamilySettings]:
    return {s.family: s for s in map(read_family_file, sorted(folder.glob("*.toml")))} if folder.is_dir() else {}


def load_family_settings(home: Home | None = None, published: Path = PUBLISHED_DIR) -> dict[str, FamilySettings]:
    """Every family's declared settings: the shipped files, then the home's (a home's file replaces a shipped one).

    Families with no file are absent; :func:`settings_for` gives them the defaults.
    Raises :class:`FamilySettingsProblem` for the first file that cannot be used.
    """
    settings = _read_folder(published / FAMILIES_FOLDER)
    if home is not None:
        settings |= _read_folder(families_folder(home))
    return settings


def settings_for(family: str, loaded: Mapping[str, FamilySettings]) -> FamilySettings:
    """The family's settings from ``loaded`` (see :func:`load_family_settings`), or the defaults."""
    return loaded.get(family) or FamilySettings(family=family)


def shipped_family_settings() -> dict[str, FamilySettings]:
    """The settings shipped with the project (no home): what the published families' papers prescribe."""
    return load_family_settings(None)


def record_family_settings(
    con: duckdb.DuckDBPyConnection, settings: Mapping[str, FamilySettings] | Iterable[FamilySettings]
) -> list[FamilySettings]:
    """Append each family's settings to ``family_settings`` when its version differs from the latest stored one.

    Takes what :func:`load_family_settings` returns, or any settings records. Returns those that
    were recorded. Append-only: going back to an earlier version adds a row again, so the table
    reads as the family's history. The caller chooses the transaction.
    """
    items = settings.values() if isinstance(settings, Mapping) else settings
    return record_versions(con, "family_settings", [(item.family, item) for item in items])


#: The versioned settings tables, each with its two constant queries: the key's latest version, and the append.
SETTINGS_TABLES = {
    "family_settings": (
        "SELECT version FROM family_settings WHERE family = ? ORDER BY loaded_at DESC LIMIT 1",
        "INSERT INTO family_settings (family, version, settings, source, loaded_at) VALUES (?, ?, ?::JSON, ?, ?)",
    ),
    "group_settings": (
        "SELECT version FROM group_settings WHERE group_name = ? ORDER BY loaded_at DESC LIMIT 1",
        "INSERT INTO group_settings (group_name, version, settings, source, loaded_at) VALUES (?, ?, ?::JSON, ?, ?)",
    ),
}


def record_versions(con: duckdb.DuckDBPyConnection, table: str, items: Iterable[tuple[str, Any]]) -> list[Any]:
    """Append ``(key, settings)`` pairs to ``table`` (of :data:`SETTINGS_TABLES`) whose version differs from the
    key's latest row; returns the settings recorded. The settings have ``settings_version``, ``canonical_json()``
    and ``source``."""
    latest_query, insert = SETTINGS_TABLES[table]
    recorded = []
    now = datetime.now(timezone.utc)
    for key, item in items:
        latest = one(con, latest_query, [key])
        if latest is not None and latest[0] == item.settings_version:
            continue
        con.execute(insert, [key, item.settings_version, item.canonical_json(), item.source, now])
        recorded.append(item)
    return recorded


def missing_exclusions(con: duckdb.DuckDBPyConnection, settings: FamilySettings) -> tuple[str, ...]:
    """Runs the settings exclude that the family does not have: most likely a misspelt run name."""
    if not settings.exclude:
        return ()
    names = sorted(settings.excluded_runs)
    found = {
        name for (name,) in con.execute(
            "SELECT run_name FROM runs WHERE family = ? AND list_contains(?::VARCHAR[], run_name)", [settings.family, names]
        ).fetchall()
    }
    return tuple(name for name in names if name not in found)

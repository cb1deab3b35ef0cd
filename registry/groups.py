"""Family groups: families fitted jointly with shared parameters, declared in TOML and versioned.

Families are rarely independent: corpora scored on one validation set plausibly share the
irreducible loss E; one architecture on several datasets its exponents. A group names its member
families, the parameters they share, the law and the objective, in one TOML file per group, named
for it: ``data/published/groups/<group>.toml`` for the shipped groups and
``$SCALEREG_HOME/groups/<group>.toml`` for a user's (a user's file replaces the shipped one of the
same name whole), next to the family settings (:mod:`registry.family_settings`) and for the same
reason outside any dataset folder.

Every distinct version of a group's settings is kept in ``group_settings`` (migration 0007); the
version (a hash of the canonical JSON) is part of the group fit's code version, so changing a
group refits it. :mod:`registry.group_refit` fits and publishes a group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import duckdb
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from laws.chinchilla import CHINCHILLA
from laws.joint import joint_law_name
from laws.objectives import OBJECTIVES
from registry.family_settings import VersionedSettings, read_declared, record_versions
from registry.home import PUBLISHED_DIR, Home
from registry.ingest import display_path
from schemas.families import family_problem

#: The folder holding one ``<group>.toml`` per group, under data/published/ and under a home.
GROUPS_FOLDER = "groups"
#: The laws a group can be fitted with (joint fits are of the Chinchilla form).
GROUP_LAWS = (CHINCHILLA.name,)


class GroupSettingsProblem(ValueError):
    """A group file that cannot be used; the message names the file and the key."""


class GroupFile(BaseModel):
    """Exactly the keys a group file may hold (see the README, "Family groups")."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    description: str = ""
    members: Annotated[list[str], Field(min_length=2)]
    shared: Annotated[list[str], Field(min_length=1)]
    law: str = CHINCHILLA.name
    objective: str = "huber_log"
    huber_delta: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    shared_exponent: bool = False

    @model_validator(mode="after")
    def _one_exponent(self) -> GroupFile:
        if self.shared_exponent and ("alpha" in self.shared) != ("beta" in self.shared):
            raise ValueError("shared_exponent = true (beta = alpha) needs alpha and beta both shared, or neither")
        return self

    @field_validator("members")
    @classmethod
    def _members(cls, members: list[str]) -> list[str]:
        for member in members:
            if problem := family_problem(member):
                raise ValueError(problem)
        repeated = sorted({m for m in members if members.count(m) > 1})
        if repeated:
            raise ValueError(f"family {repeated[0]!r} is listed twice")
        return members

    @field_validator("shared")
    @classmethod
    def _shared(cls, shared: list[str]) -> list[str]:
        names = CHINCHILLA.param_names
        unknown = [s for s in shared if s not in names]
        if unknown:
            raise ValueError(f"cannot share {unknown[0]!r}; choose from {', '.join(names)}")
        if len(set(shared)) != len(shared):
            raise ValueError("a parameter is listed twice")
        if len(shared) == len(names):
            raise ValueError("sharing every parameter makes the members one family; merge them instead")
        return shared

    @field_validator("law")
    @classmethod
    def _law(cls, law: str) -> str:
        if law not in GROUP_LAWS:
            raise ValueError(f"groups are fitted with {', '.join(GROUP_LAWS)}; got {law!r}")
        return law

    @field_validator("objective")
    @classmethod
    def _objective(cls, objective: str) -> str:
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(sorted(OBJECTIVES))}")
        return objective


@dataclass(frozen=True)
class GroupSettings(VersionedSettings):
    """A declared group. ``source`` says where it was read; it is not part of the version."""

    group: str
    members: tuple[str, ...]
    shared: tuple[str, ...]
    law: str = CHINCHILLA.name
    objective: str = "huber_log"
    huber_delta: float | None = None
    shared_exponent: bool = False
    description: str = ""
    source: str | None = None

    def canonical(self) -> dict[str, Any]:
        """JSON-ready, order-free: what the version hashes and the table stores (members and shared sorted)."""
        return {
            "description": self.description,
            "members": sorted(self.members),
            "shared": sorted(self.shared),
            "law": self.law,
            "objective": self.objective,
            "huber_delta": self.huber_delta,
            "shared_exponent": self.shared_exponent,
        }

    @property
    def joint_law(self) -> str:
        """The law name each member's coefficients from this group are published under."""
        return joint_law_name(self.law, self.group)

    def options(self, huber_delta: float) -> dict[str, Any]:
        """The joint fit's options: the group's objective, its Huber threshold or the refit's, one exponent (beta = alpha)."""
        tie = {"tie_exponents": True} if self.shared_exponent else {}
        return {"objective": self.objective, "huber_delta": self.huber_delta or huber_delta} | tie


def _where(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    index = next((p for p in loc if isinstance(p, int)), None)
    return ".".join(parts) + (f" (entry {index + 1})" if index is not None else "")


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return f"unknown key; known keys: {', '.join(GroupFile.model_fields)}"
    if error["type"] == "missing":
        return "missing; a group names its members and the parameters they share"
    return str(error["msg"]).removeprefix("Value error, ")


def read_group_file(path: Path) -> GroupSettings:
    """Read and check one ``<group>.toml``; every mistake names the file and the key."""
    declared = read_declared(path, GroupFile, problem=GroupSettingsProblem, kind="group", where=_where, message=_message)
    name, shown = path.stem, display_path(path)
    return GroupSettings(
        group=name, members=tuple(declared.members), shared=tuple(declared.shared), law=declared.law,
        objective=declared.objective, huber_delta=declared.huber_delta, shared_exponent=declared.shared_exponent,
        description=declared.description, source=shown,
    )


def groups_folder(home: Home) -> Path:
    """Where a user's group files live: ``$SCALEREG_HOME/groups/``."""
    return home.root / GROUPS_FOLDER


def _read_folder(folder: Path) -> dict[str, GroupSettings]:
    return {g.group: g for g in map(read_group_file, sorted(folder.glob("*.toml")))} if folder.is_dir() else {}


def load_groups(home: Home | None = None, published: Path = PUBLISHED_DIR) -> dict[str, GroupSettings]:
    """Every declared group: the shipped files, then the home's (a home's file replaces a shipped one).

    Raises :class:`GroupSettingsProblem` for the first file that cannot be used.
    """
    groups = _read_folder(published / GROUPS_FOLDER)
    if home is not None:
        groups |= _read_folder(groups_folder(home))
    return groups


def groups_of(family: str, groups: Mapping[str, GroupSettings]) -> list[GroupSettings]:
    """The groups ``family`` is a member of."""
    return [g for g in groups.values() if family in g.members]


def record_group_settings(
    con: duckdb.DuckDBPyConnection, groups: Mapping[str, GroupSettings] | Iterable[GroupSettings]
) -> list[GroupSettings]:
    """Append each group's settings to ``group_settings`` when its version differs from the latest stored one.

    Append-only, like ``family_settings``: the table reads as the group's history. Returns those recorded.
    """
    items = groups.values() if isinstance(groups, Mapping) else groups
    return record_versions(con, "group_settings", [(item.group, item) for item in items])

"""How a tracker's runs become registry runs: which param or tag holds N, D and the family, which metric is the loss.

A tracker mapping is a flat TOML file, checked when it is loaded: an unknown key, a value of the wrong
kind or keys that contradict one another fail the mapping with a message naming the line, before the
tracker is contacted. Values that name a run's field are written as MLflow's own search syntax
writes them: ``params.NAME`` or ``tags.NAME``; a count may also be a plain number shared by every run.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from registry.adapters.base import FileProblem
from schemas.families import family_problem

#: Where a run's value may come from: one of its params or one of its tags.
FIELD_KINDS = ("params", "tags")
#: Run names: the tracker's run name, its run id, or a param or tag.
RUN_NAME_CHOICES = ("name", "id")


class TrackerMappingProblem(FileProblem):
    """A tracker mapping that cannot be applied; names the mapping file and line."""


@dataclass(frozen=True)
class FieldRef:
    """A param or tag of a run, by name (``params.n_params``: kind ``params``, name ``n_params``)."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.name}"


def parse_ref(text: str) -> FieldRef | None:
    """``params.NAME`` or ``tags.NAME`` as a reference; None for anything else (the caller says what it wanted)."""
    kind, dot, name = text.partition(".")
    return FieldRef(kind, name) if dot and kind in FIELD_KINDS and name else None


def _mistake(message: str, key: str) -> PydanticCustomError:
    # the message travels in the context: a template would read braces in a param name as placeholders
    return PydanticCustomError("tracker_mapping", "{message}", {"message": message, "key": key})


def _count_source(key: str, value: str | float | None) -> None:
    """A count is a param, a tag or a positive number."""
    if value is None or isinstance(value, float) and value > 0:
        return
    if isinstance(value, str) and parse_ref(value):
        return
    raise _mistake(
        f'{key} = {value!r} is neither a run field nor a positive number; write "params.NAME" or "tags.NAME" '
        "(as MLflow's search does) or a number such as 1.2e10",
        key,
    )


class TrackerMapping(BaseModel):
    """The keys a tracker mapping may hold (see the README, "Bring your runs", "MLflow")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    citation: str | None = None
    loss_metric: str
    loss_name: str | None = None
    family: str | None = None
    family_from: str | None = None
    params: str | float
    tokens: str | float | None = None
    tokens_per_step: str | float | None = None
    unique_tokens: str | float | None = None
    run_name: str = "name"

    _origin: str = PrivateAttr("<built-in>")
    _text: str = PrivateAttr("")

    @model_validator(mode="after")
    def _consistent(self) -> TrackerMapping:
        if (self.family is None) == (self.family_from is None):
            raise _mistake(
                'give the family either as a key (family = "my-sweep") or from a run field (family_from = "params.family"), '
                "exactly one of them", "family_from" if self.family_from else "family",
            )
        if self.family is not None and (problem := family_problem(self.family)):
            raise _mistake(problem, "family")
        if self.family_from is not None and not parse_ref(self.family_from):
            raise _mistake(f'family_from = {self.family_from!r}: write "params.NAME" or "tags.NAME"', "family_from")
        if (self.tokens is None) == (self.tokens_per_step is None):
            raise _mistake(
                "give the training tokens D either per run (tokens) or per logged step (tokens_per_step), exactly one",
                "tokens_per_step" if self.tokens_per_step is not None else "tokens",
            )
        for key in ("params", "tokens", "tokens_per_step", "unique_tokens"):
            value = getattr(self, key)
            _count_source(key, float(value) if isinstance(value, int) else value)
        if self.run_name not in RUN_NAME_CHOICES and not parse_ref(self.run_name):
            raise _mistake(
                f'run_name = {self.run_name!r}: use "name" (the tracker\'s run name), "id" (its run id), '
                '"params.NAME" or "tags.NAME"', "run_name",
            )
        if self.loss_metric == "" or self.loss_name == "":
            raise _mistake("the loss metric and its name must not be empty", "loss_metric" if self.loss_metric == "" else "loss_name")
        return self

    @property
    def origin(self) -> str:
        return self._origin

    def reading(self) -> str:
        """sha256 of how runs are read (never the mapping's name or citation): part of an import's identity."""
        how = self.model_dump(mode="json", exclude={"name", "citation"})
        return hashlib.sha256(json.dumps(how, sort_keys=True).encode()).hexdigest()

    def fields_read(self) -> tuple[FieldRef, ...]:
        """Every param and tag the mapping reads, for messages and for the snapshot of a run."""
        values = (self.family_from, self.params, self.tokens, self.tokens_per_step, self.unique_tokens, self.run_name)
        return tuple(ref for value in values if isinstance(value, str) and (ref := parse_ref(value)))


def _line_of(text: str, key: str) -> int | None:
    written = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    return next((n for n, line in enumerate(text.splitlines(), start=1) if written.match(line)), None)


def _message(error: dict) -> tuple[str, str]:
    """One pydantic error as (message, key)."""
    kind, loc = error["type"], error["loc"]
    key = str(loc[0]) if loc else ""
    if kind == "tracker_mapping":
        return error["ctx"]["message"], error["ctx"]["key"]
    if kind == "extra_forbidden":
        return f"unknown key {key!r}; known keys: {', '.join(TrackerMapping.model_fields)}", key
    if kind == "missing":
        hint = {"loss_metric": 'loss_metric = "eval/loss"', "params": 'params = "params.n_params"'}.get(key, f"{key} = ...")
        return f"{key} is missing; add a line such as {hint}", key
    return f"{key} must be text in quotes{' or a number' if key in ('params', 'tokens', 'tokens_per_step', 'unique_tokens') else ''}; got {error.get('input')!r}", key


def load_tracker_mapping(path: Path) -> TrackerMapping:
    """Parse and check a tracker mapping file; every mistake names its line."""
    origin = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TrackerMappingProblem(f"mapping {origin}: cannot be read ({getattr(error, 'strerror', None) or error}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TrackerMappingProblem(f"mapping {origin}: not valid TOML ({error}); fix that line.") from None
    try:
        mapping = TrackerMapping.model_validate(data)
    except ValidationError as invalid:
        message, key = _message(invalid.errors()[0])
        number = _line_of(text, key)
        where = origin if number is None else f"{origin}, line {number}"
        raise TrackerMappingProblem(f"mapping {where}: {message}.") from None
    mapping._origin, mapping._text = origin, text
    return mapping

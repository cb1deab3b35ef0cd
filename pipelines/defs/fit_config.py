"""Run config of a refit, built from the registry's settings so a new setting needs no change here."""

import dataclasses
import typing

import dagster as dg
import pydantic

from registry.settings import FitSettings


def config_class(settings: type, name: str) -> type[dg.Config]:
    """A ``dg.Config`` with the fields, types and defaults of a settings dataclass; nested dataclasses nest."""
    hints = typing.get_type_hints(settings)
    fields: dict[str, typing.Any] = {}
    for field in dataclasses.fields(settings):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            nested = config_class(kind, kind.__name__)
            fields[field.name] = (nested, nested())
        else:
            fields[field.name] = (kind, field.default)
    return pydantic.create_model(name, __base__=dg.Config, __doc__=settings.__doc__, **fields)


RefitConfig = config_class(FitSettings, "RefitConfig")


def fit_settings(config: dg.Config) -> FitSettings:
    """The registry's settings for a run's config (validated once more by the dataclass types)."""
    return pydantic.TypeAdapter(FitSettings).validate_python(config.model_dump())

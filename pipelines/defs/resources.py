"""The registry as a Dagster resource: a DuckDB resource that knows its home and migrates on open."""


from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from registry.db import writer as open_writer
from registry.home import Home


class RegistryResource(DuckDBResource):
    """DuckDB registry under ``$SCALEREG_HOME``; connections are opened per use and closed at once.

    Holding a connection only for a transaction is what lets readers (the CLI, notebooks) get in
    between writes: DuckDB locks the whole file for as long as a writer has it open.
    """

    home: str

    @classmethod
    def for_home(cls, home: Home) -> "RegistryResource":
        return cls(database=str(home.registry), home=str(home.root))

    @property
    def paths(self) -> Home:
        return Home.from_env(self.home).ensure()

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A migrated read-write connection, closed even when the body fails.

        Uses the registry's own opener (bounded retry on the file lock, close in ``finally``)
        rather than ``get_connection``, which leaves the file locked if the body raises.
        """
        with open_writer(self.paths.registry) as con:
            yield con


def defs(home: Home) -> dg.Definitions:
    return dg.Definitions(resources={"registry": RegistryResource.for_home(home)})

"""The DuckDB registry: migrations, ingest, versioned tables and the read API planners use.

Importable without Dagster; the read API lives in :mod:`registry.read`.
"""

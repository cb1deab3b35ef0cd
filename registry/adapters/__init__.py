"""Readers that turn each source's native format into canonical incoming rows.

Most sources are described by a declarative mapping (see :mod:`registry.adapters.mapping`);
only formats a table cannot describe (one JSON document per model, a folder of curves plus a
config) have code of their own.
"""

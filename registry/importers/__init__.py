"""Runs from where they live: experiment trackers (an MLflow tracking server) and tracker exports (W&B).

An importer turns what it reads into the same :class:`registry.adapters.base.Batch` a file gives and
stores it through :func:`registry.ingest.store_batch`, so every rule of ingest (validation, rejects
kept with reasons, conflicts, content hashes, superseded readings) holds for tracker runs too.
"""

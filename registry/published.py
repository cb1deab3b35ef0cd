"""The published datasets the project ships, and how each is read.

Tabular sources are described by a mapping file next to the data; the two that a table cannot
describe have adapters of their own (:mod:`registry.adapters.gadre`, :mod:`registry.adapters.olmo_ladder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from registry.home import PUBLISHED_DIR, Home
from registry.ingest import IngestReport, ingest_path


@dataclass(frozen=True)
class PublishedFile:
    """One shipped file or folder and how to read it."""

    path: str
    adapter: str = "mapping"
    mapping: str | None = None
    name: str | None = None
    citation: str | None = None


@dataclass(frozen=True)
class PublishedSource:
    """A published dataset: one Dagster asset, one or more files, the families it feeds."""

    key: str
    title: str
    families: tuple[str, ...]
    files: tuple[PublishedFile, ...]


PUBLISHED: tuple[PublishedSource, ...] = (
    PublishedSource(
        key="chinchilla",
        title="Hoffmann et al. 2022, Figure 4 (245 points, via Besiroglu et al. 2024)",
        families=("chinchilla",),
        files=(PublishedFile("chinchilla/svg_extracted_data.csv", mapping="chinchilla/mapping.toml"),),
    ),
    PublishedSource(
        key="isoflops",
        title="IsoFLOP experiments (Czech et al. 2026)",
        families=("isoflop-ml-scalefit-chinchilla", "isoflop-epochai-chinchilla", "isoflop-misfitting-fineweb-c4"),
        files=(PublishedFile("isoflops/isoflops.csv", mapping="isoflops/mapping.toml"),),
    ),
    PublishedSource(
        key="gadre_overtraining",
        title="Gadre et al. 2024, over-training (104 models, 3 training sets)",
        families=("gadre-c4", "gadre-rpj", "gadre-rw"),
        files=(
            PublishedFile(
                "gadre_overtraining/models",
                adapter="gadre",
                name="gadre-overtraining",
                citation="Gadre et al. 2024 (arXiv 2403.08540); mlfoundations/scaling@a003c491 exp_data/models/",
            ),
        ),
    ),
    PublishedSource(
        key="olmo_ladder",
        title="OLMo-2 model ladder (Bhagia et al. 2024)",
        families=("olmo2-ladder",),
        files=(
            PublishedFile(
                "olmo_ladder",
                adapter="olmo_ladder",
                name="olmo2-ladder",
                citation="Bhagia et al. 2024 (arXiv 2412.04403); allenai/OLMo-ladder@67a3f440 src/scripts/paper/data/ladder-runs/",
            ),
        ),
    ),
    PublishedSource(
        key="gemstones",
        title="Gemstones (McLeish et al. 2025), and the 28 Chinchilla points they thinned Figure 4 to",
        families=("gemstones", "chinchilla-slim-gemstones"),
        files=(
            PublishedFile("gemstones/wandb_df_for_fitting_hot_100b+_477.jsonl", mapping="gemstones/mapping.toml"),
            PublishedFile("gemstones/wandb_df_for_fitting_slim_chinchilla.jsonl", mapping="gemstones/slim_mapping.toml"),
        ),
    ),
)

BY_KEY = {source.key: source for source in PUBLISHED}


def ingest_published(
    con: duckdb.DuckDBPyConnection, home: Home, source: PublishedSource, root: Path = PUBLISHED_DIR
) -> list[IngestReport]:
    """Ingest every file of a published source; already-ingested content is a no-op."""
    reports = []
    for file in source.files:
        mapping = root / file.mapping if file.mapping else None
        reports.append(
            ingest_path(
                con, home, root / file.path, name=file.name or (None if mapping else source.key), kind="published",
                adapter=file.adapter, mapping=mapping, citation=file.citation,
            )
        )
    return reports

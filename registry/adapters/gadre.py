"""Gadre et al. 2024 (over-training): one JSON document per trained model, eight validation losses.

The family is the training set (``c4_original`` -> ``gadre-c4``); the loss fitted is C4
validation, the others are kept as points of the same run.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from registry.adapters.base import Batch, FileProblem, canonical

FAMILIES = {"c4_original": "gadre-c4", "rpj": "gadre-rpj", "rw_original": "gadre-rw"}
FIT_LOSS = "val/c4"


def loss_name(val_data: list[str]) -> str:
    """A short stable name for a validation set from its shard path (``.../c4_val/shard-...`` -> ``val/c4``)."""
    path = val_data[0] if val_data else "unknown"
    parts = path.split("/")
    if "c4_val" in parts:
        return FIT_LOSS
    if "val_tok_mult" in parts:
        index = parts.index("val_tok_mult")
        return "val/" + parts[index + 1]
    return "val/" + parts[-2] if len(parts) > 1 else "val/" + path


def read(path: Path) -> Batch:
    """Read a folder of model JSON files (or one file) into canonical rows, one input row per model."""
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise FileProblem(f"{path}: no *.json model files found; point at the folder of Gadre et al. model files.")
    points: list[dict] = []
    raw: list[dict] = []
    for row_number, file in enumerate(files, start=1):
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
            hyper = document["hyperparameters"]
            results = document["results"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
            raw.append({"row_number": row_number, "member": file.name, "raw": json.dumps({"error": str(error)})})
            points.append({"row_number": row_number, "member": file.name, "family": None, "loss": None,
                           "loss_name": FIT_LOSS, "fit_loss": True})
            continue
        dataset = document.get("dataset_name", "")
        common = {
            "row_number": row_number,
            "member": file.name,
            "family": FAMILIES.get(dataset, f"gadre-{dataset}"),
            "run_name": document.get("name", file.stem),
            "params": hyper.get("params"),
            "params_non_embedding": hyper.get("params_no_embed"),
            "tokens": hyper.get("tokens"),
            "tags": json.dumps(
                {k: hyper.get(k) for k in ("model", "chinchilla_multiplier", "lr", "wd", "warmup", "global_bs")}
                | {"dataset_name": dataset, "uuid": document.get("uuid")}
            ),
        }
        names = [loss_name(result.get("val_data", [])) for result in results]
        if FIT_LOSS not in names:
            points.append(common | {"loss": None, "loss_name": FIT_LOSS, "fit_loss": True})
        for name, result in zip(names, results):
            points.append(common | {"loss": result.get("loss"), "loss_name": name, "fit_loss": name == FIT_LOSS})
        raw.append({"row_number": row_number, "member": file.name, "raw": json.dumps(document)})
    frame = pl.DataFrame(points, infer_schema_length=None)
    return Batch(points=canonical(frame), raw=pl.DataFrame(raw), rows_read=len(files))

"""The OLMo-2 model ladder (Bhagia et al. 2024): a folder of per-step evaluation curves plus a config.

Parameter counts are not in the curve files; they come from ``configs/final.json``, keyed by the
size label, and for sizes that config lacks (3B) from the ladder code's own parameter table. Each
CSV row is one evaluation step carrying eleven validation losses; C4 is fitted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from registry.adapters.base import Batch, FileProblem, canonical

FAMILY = "olmo2-ladder"
FIT_LOSS = "val/c4_en"
_LOSS_RE = re.compile(r"^eval/(.+)-validation/CrossEntropyLoss$")
_FILE_RE = re.compile(r"^(?P<size>[0-9.]+[MB])-(?P<multiple>[0-9.]+)xC(?P<rerun>-rerun)?$")

#: Non-embedding parameter counts from the ladder code's ``MODEL_PARAMS`` table
#: (allenai/OLMo-ladder@67a3f440, src/scaling/utils.py; the same table sits in the paper's plotting
#: scripts), keyed by the size prefix of the curve files. The shipped ``configs/final.json`` gives
#: the same counts for 190M-1B but has no entry for 3B, whose six curves would otherwise have no N.
#: The config wins where it has a size; this table only fills the sizes it lacks.
LADDER_CODE_PARAMS: dict[str, float] = {
    "190M": 190_354_176.0,
    "370M": 371_262_464.0,
    "600M": 597_382_464.0,
    "760M": 758_220_288.0,
    "1B": 1_279_395_840.0,
    "3B": 3_169_537_280.0,
}
CONFIG_SOURCE = "configs/final.json"
LADDER_CODE_SOURCE = "OLMo-ladder src/scaling/utils.py MODEL_PARAMS"


def _config_sizes(config_path: Path) -> dict[str, float]:
    """Parameter counts keyed by the file-name prefix of each size ("1.3B" is written "1B" in names)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    sizes: dict[str, float] = {}
    for label, entry in config.items():
        for curve in entry.get("paths", []):
            match = _FILE_RE.match(Path(curve).stem)
            if match:
                sizes[match["size"]] = float(entry["n"])
        sizes.setdefault(label, float(entry["n"]))
    return sizes


def _sizes(config_path: Path) -> dict[str, tuple[float, str]]:
    """Each size's parameter count and where it comes from: the shipped config, else the ladder code's table."""
    from_code = {size: (params, LADDER_CODE_SOURCE) for size, params in LADDER_CODE_PARAMS.items()}
    return from_code | {size: (params, CONFIG_SOURCE) for size, params in _config_sizes(config_path).items()}


def read(path: Path) -> Batch:
    """Read ``path`` (the ``olmo_ladder`` folder with ``ladder-runs/`` and ``configs/final.json``)."""
    runs_dir, config_path = path / "ladder-runs", path / "configs" / "final.json"
    if not runs_dir.is_dir() or not config_path.is_file():
        raise FileProblem(f"{path}: expected ladder-runs/*.csv and configs/final.json inside; point at the olmo_ladder folder.")
    sizes = _sizes(config_path)
    frames, raws = [], []
    offset = 0
    for file in sorted(runs_dir.glob("*.csv")):
        curve = pl.read_csv(file, infer_schema_length=None)
        match = _FILE_RE.match(file.stem)
        size = match["size"] if match else None
        params, params_source = sizes.get(size, (None, None)) if size else (None, None)
        loss_columns = [c for c in curve.columns if _LOSS_RE.match(c)]
        numbered = curve.with_row_index("row_number", offset=offset + 1).with_columns(pl.col("row_number").cast(pl.Int64))
        raws.append(
            numbered.select("row_number", pl.lit(file.name).alias("member"),
                            pl.struct(pl.exclude("row_number")).struct.json_encode().alias("raw"))
        )
        tags = json.dumps({"size": size, "multiple_of_chinchilla": match["multiple"] if match else None,
                           "rerun": bool(match and match["rerun"]), "params_source": params_source})
        base = numbered.select(
            "row_number",
            pl.lit(file.name).alias("member"),
            pl.lit(FAMILY).alias("family"),
            pl.lit(file.stem).alias("run_name"),
            pl.lit(params, dtype=pl.Float64).alias("params"),
            pl.col("throughput/total_tokens").cast(pl.Float64).alias("tokens"),
            (pl.col("throughput/total_training_Gflops").cast(pl.Float64) * 1e9).alias("flops"),
            pl.col("_step").cast(pl.Int64).alias("step"),
            pl.lit(tags).alias("tags"),
            *[pl.col(c).cast(pl.Float64).alias(c) for c in loss_columns],
        )
        long = base.unpivot(index=[c for c in base.columns if c not in loss_columns], on=loss_columns,
                            variable_name="loss_name", value_name="loss")
        long = long.with_columns(pl.col("loss_name").str.replace(_LOSS_RE.pattern, "val/$1"))
        long = long.with_columns((pl.col("loss_name") == FIT_LOSS).alias("fit_loss"))
        # Empty cells of the losses not fitted are absent evaluations, not data; the fitted loss stays
        # even when empty, so the row is rejected with a reason instead of vanishing.
        frames.append(long.filter(pl.col("fit_loss") | pl.col("loss").is_not_null()))
        offset += curve.height
    if not frames:
        raise FileProblem(f"{runs_dir}: no curve files (*.csv) found.")
    points = canonical(pl.concat(frames, how="diagonal"))
    missing_size = points.filter(pl.col("params").is_null()).select("row_number", "member").unique()
    parse_errors = missing_size.select(
        "row_number",
        (pl.lit("params unknown: neither configs/final.json nor the ladder code's parameter table has the size of ")
         + pl.col("member") + pl.lit("; add its parameter count under its size label in configs/final.json and ingest again"))
        .alias("reason"),
    )
    return Batch(points=points, raw=pl.concat(raws), rows_read=offset, parse_errors=parse_errors)

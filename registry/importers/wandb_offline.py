"""W&B offline runs (``WANDB_MODE=offline``): the run folder read without a network.

An offline run keeps everything in ``run-<id>.wandb``: W&B's append-only record log (a LevelDB-style
log: a 7-byte header ``:W&B`` + magic + version, then 32 KiB blocks of records, each a CRC-32, a length
and a type, split across blocks as first/middle/last), whose records are W&B's own protobuf messages
(``wandb.proto.wandb_internal_pb2.Record``). Recent ``wandb`` releases sync these files with a compiled
service and no longer ship a Python reader, so the log framing is read here and each record is parsed
with the installed ``wandb`` package's protobuf classes (imported when a run is read).

The run's config becomes columns named as W&B's runs table names them (``model.n_params``), repeated on
each history row; every history record is a row (``_step`` and the logged metrics). A run is finished when
its log ends with an exit record of exit code 0; otherwise every row is rejected naming why.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from registry.adapters.base import Batch, FileProblem
from registry.adapters.mapping import ColumnMapping
from registry.importers.wandb import history_batch, reject_rows

MAGIC = b":W&B"
HEADER_BYTES = 7
BLOCK_BYTES = 32 * 1024
RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass(frozen=True)
class OfflineRun:
    run_id: str
    name: str
    config: dict[str, object]  # flattened: {"model.n_params": 2e7}
    history: list[dict[str, object]]
    exit_code: int | None  # None: the log has no exit record (still running, or the process died)


def _records(data: bytes, name: str) -> Iterator[bytes]:
    """The records of a W&B log, each checked against its CRC; a torn record at the end ends the log."""
    if data[:4] != MAGIC:
        raise FileProblem(f"{name}: not a W&B run log (it does not start with ':W&B')")
    position, pending = HEADER_BYTES, b""
    while position + RECORD_HEADER.size <= len(data):
        room = BLOCK_BYTES - position % BLOCK_BYTES
        if room < RECORD_HEADER.size:  # the rest of a block too small for a header is padding
            position += room
            continue
        crc, length, kind = RECORD_HEADER.unpack_from(data, position)
        chunk = data[position + RECORD_HEADER.size: position + RECORD_HEADER.size + length]
        if (crc, length, kind) == (0, 0, 0) or len(chunk) < length:
            return  # zero padding or a record the writer did not finish
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise FileProblem(f"{name}: damaged at byte {position} (a record's checksum does not match)")
        position += RECORD_HEADER.size + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def _flat(prefix: str, value: object) -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flat(f"{prefix}.{key}" if prefix else str(key), inner)
    else:
        yield prefix, value


def run_log(folder_or_file: Path) -> Path:
    """The ``run-<id>.wandb`` file of an offline run folder (or the file itself)."""
    if folder_or_file.is_file():
        return folder_or_file
    logs = sorted(folder_or_file.glob("run-*.wandb"))
    if len(logs) != 1:
        raise FileProblem(
            f"{folder_or_file.name}: an offline W&B run folder holds one run-<id>.wandb file; found {len(logs)} "
            "(give the wandb/offline-run-... folder of one run)"
        )
    return logs[0]


def read_offline_run(folder_or_file: Path) -> OfflineRun:
    """An offline run's id, name, config, history and exit code, from its log alone."""
    from wandb.proto import wandb_internal_pb2

    log = run_log(folder_or_file)
    run_id = name = ""
    config: dict[str, object] = {}
    history: list[dict[str, object]] = []
    exit_code = None
    for data in _records(log.read_bytes(), log.name):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):
            updates = record.run.config.update if kind == "run" else record.config.update
            if kind == "run":
                run_id, name = record.run.run_id, record.run.display_name or record.run.run_id
            for item in updates:
                key = item.key or ".".join(item.nested_key)
                if not key.startswith("_wandb"):
                    config.update(_flat(key, json.loads(item.value_json)))
        elif kind == "history":
            history.append({item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
        elif kind == "exit":
            exit_code = record.exit.exit_code
    return OfflineRun(run_id, name, config, history, exit_code)


def read_offline(path: Path, mapping: ColumnMapping, family: str | None = None) -> Batch:
    """The ``wandb-offline`` preset: one row per logged step, the run's config on each row."""
    run = read_offline_run(path)
    if not run.history:
        raise FileProblem(f"{path.name}: the offline run {run.name!r} logged no metrics (no history records)")
    config = {key: value for key, value in run.config.items() if not isinstance(value, list)}
    frame = pl.DataFrame(run.history).with_columns(
        pl.lit(value).alias(key) for key, value in config.items() if key not in run.history[0]
    )
    batch = history_batch(path, frame, mapping, family, mapping.columns.get("step") or "_step", run=run.name)
    if run.exit_code == 0:
        return batch
    why = "has no exit record (still running, or its process died)" if run.exit_code is None else f"exited with code {run.exit_code}"
    return reject_rows(batch, frame.with_row_index("row_number", offset=1), f"the offline W&B run {why}: only finished runs are ingested")

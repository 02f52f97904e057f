"""Read an offline W&B run back (`<run>/wandb/offline-run-*/run-*.wandb`): what the tests check a run logged.

A .wandb file is W&B's transaction log: LevelDB's log format (32 KiB blocks of checksummed,
possibly fragmented records) after a 7-byte header, each record a protobuf `Record` of wandb's
own schema. No W&B server is reachable in the tests, so this is how they see what a run sent.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterable

_BLOCK = 32768
_FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version
_RECORD_HEADER = struct.Struct("<IHB")  # checksum, length, type (1 full, 2 first, 3 middle, 4 last)


def _log_payloads(data: bytes) -> Iterable[bytes]:
    """The records of a W&B transaction log (LevelDB log format after a 7-byte file header)."""
    ident, magic, _ = _FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError("not a W&B transaction log (.wandb file)")
    offset, pending = _FILE_HEADER.size, b""
    while offset + _RECORD_HEADER.size <= len(data):
        room = _BLOCK - offset % _BLOCK
        if room < _RECORD_HEADER.size:  # block trailer: zero padding
            offset += room
            continue
        _, length, kind = _RECORD_HEADER.unpack_from(data, offset)
        offset += _RECORD_HEADER.size
        chunk, offset = data[offset:offset + length], offset + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            yield pending
            pending = b""


def read_offline_run(folder: Path | str) -> dict[str, Any]:
    """What an offline W&B run folder holds: id, name, project, group, job_type, tags, config, summary, exit code,
    history and artifacts.

    `folder` is a `wandb/offline-run-*` folder (or the run-*.wandb file in it). The config is
    nested as it was given to wandb.init; the summary is the final one (every update applied).
    `history` is every logged key's last value (a table or figure is a reference: `_type` and `path`,
    relative to the run's files/ folder, see `logged_file`); `artifacts` lists each logged artifact as
    {name, type, files: the paths its manifest lists}.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(folder)
    path = path if path.is_file() else next(path.glob("*.wandb"))
    out: dict[str, Any] = {"config": {}, "summary": {}, "exit_code": None, "history": {}, "artifacts": []}
    for payload in _log_payloads(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(id=run.run_id, name=run.display_name, project=run.project, entity=run.entity,
                       group=run.run_group, job_type=run.job_type, tags=list(run.tags))
            _apply_items(out["config"], run.config.update)
        elif kind == "config":
            _apply_items(out["config"], record.config.update)
        elif kind == "summary":
            _apply_items(out["summary"], record.summary.update)
        elif kind == "history":
            _apply_items(out["history"], record.history.item)
        elif kind == "artifact":
            artifact = record.artifact
            out["artifacts"].append({"name": artifact.name, "type": artifact.type,
                                     "files": [entry.path for entry in artifact.manifest.contents]})
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    out["config"] = {k: v.get("value", v) if isinstance(v, dict) and "value" in v else v
                     for k, v in out["config"].items() if not k.startswith("_")}
    return out


def _apply_items(target: dict[str, Any], items: Iterable[Any]) -> None:
    for item in items:
        keys = list(item.nested_key) or [item.key]
        node = target
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = json.loads(item.value_json) if item.value_json else None


def logged_file(folder: Path | str, value: dict[str, Any]) -> Path:
    """The file a logged table or figure (a history value with a `path`) was written to in the run's folder."""
    return Path(folder) / "files" / value["path"]


def offline_runs(root: Path | str) -> list[Path]:
    """Every offline W&B run folder under `root` (a run folder, a sweep folder or runs/)."""
    return sorted(p for p in Path(root).rglob("offline-run-*") if p.is_dir())


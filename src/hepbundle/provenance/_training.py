"""The training record: hyperparameters, metrics, seeds, start/end and hardware of the run.

Filled from a JSON record the training script wrote (``training.record``, see
:func:`write_training_record`), from an MLflow run in a local tracking store
(``--from-mlflow RUN_ID`` or ``training.mlflow``), and from what the spec declares; the spec
wins over the record, the record over MLflow.
"""

from __future__ import annotations

import calendar
import json
import os
import platform
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._base import utc_timestamp
from ..config import settings
from ..errors import SpecError
from ..extras import require
from ..manifest import canonical_json
from ..spec import normalise_metrics, validate
from ._environment import nvidia_gpus
from .datarefs import Where

__all__ = [
    "Training",
    "capture_training",
    "host_hardware",
    "split_metric",
    "tracking_uri",
    "write_training_record",
]

Training = tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]
_SPLITS = {"train": "train", "training": "train", "val": "validation", "valid": "validation"}
_SPLITS |= {"validation": "validation", "test": "test", "eval": "test"}
_SEED = re.compile(r"(^|[_.-])(seed|random_state)$")


def capture_training(
    section: Mapping[str, Any], base: Path, where: Where, run_id: str | None
) -> Training:
    """(``provenance.training`` record, metrics, hyperparameters) merged from MLflow, the
    record file and the spec's ``training:`` section."""
    layers: list[Mapping[str, Any]] = []
    mlflow_cfg = dict(section.get("mlflow") or {})
    if run_id:
        mlflow_cfg["run_id"] = run_id
    if mlflow_cfg.get("run_id"):
        layers.append(_from_mlflow(mlflow_cfg, base, where))
    if "record" in section:
        layers.append(_from_file(base / str(section["record"]), where))
    layers.append({k: v for k, v in section.items() if k not in ("record", "mlflow")})
    record: dict[str, Any] = {}
    metrics: dict[tuple[str, str], dict[str, Any]] = {}
    hyper: dict[str, Any] = {}
    for layer in layers:
        for m in normalise_metrics(layer.get("metrics", {})):
            metrics[(m["name"], m.get("split", ""))] = m
        hyper.update(layer.get("hyperparameters", {}))
        for key, value in layer.items():
            if key in ("seeds", "hardware", "source"):
                record[key] = {**record.get(key, {}), **value}
            elif key not in ("metrics", "hyperparameters"):
                record[key] = value
    if "start" in record and "end" in record:
        record["durationSeconds"] = _seconds(record["end"]) - _seconds(record["start"])
    return record, [metrics[k] for k in sorted(metrics)], hyper


def _seconds(ts: Any) -> int:
    try:
        return calendar.timegm(time.strptime(str(ts), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise SpecError(f"training: {ts!r} is not a UTC time like 2026-01-31T12:00:00Z") from None


def _from_file(path: Path, where: Where) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SpecError(
            f"{where('record')}training.record: {path} does not exist",
            hint="run the training first; it writes this file",
        ) from None
    except (OSError, ValueError) as e:
        raise SpecError(f"{where('record')}training.record: cannot read {path}: {e}") from None
    if not isinstance(obj, dict):
        raise SpecError(f"{where('record')}training.record: {path} must hold a JSON object")
    validate(obj, "training-record.schema.json", filename=str(path))
    obj.pop("mediaType", None)
    return {**obj, "source": {"record": path.name}}


def _from_mlflow(cfg: Mapping[str, Any], base: Path, where: Where) -> dict[str, Any]:
    """Params → hyperparameters (``*seed`` → seeds), latest metrics with the split read from a
    ``test_``/``val_``/``train_`` prefix or ``/`` part, run start/end, system tags."""
    MlflowException = require("mlflow.exceptions").MlflowException
    MlflowClient = require("mlflow.tracking").MlflowClient
    uri = tracking_uri(cfg.get("tracking_uri"), base)
    run_id = str(cfg["run_id"])
    try:
        run = MlflowClient(tracking_uri=uri).get_run(run_id)
    except MlflowException as e:
        raise SpecError(
            f"{where('mlflow')}training.mlflow: cannot read run {run_id} from {uri}: "
            f"{str(e).splitlines()[0]}"
        ) from None
    seeds: dict[str, Any] = {}
    hyper: dict[str, Any] = {}
    for k, v in sorted(run.data.params.items()):
        (seeds if _SEED.search(k) else hyper)[k] = _number(v)
    metrics = [split_metric(k, v) for k, v in sorted(run.data.metrics.items())]
    out: dict[str, Any] = {"hyperparameters": hyper, "metrics": metrics}
    if seeds:
        out["seeds"] = seeds
    for key, ms in (("start", run.info.start_time), ("end", run.info.end_time)):
        if ms:
            out[key] = utc_timestamp(ms // 1000)
    tags = run.data.tags
    src: dict[str, Any] = {"mlflow": {"run_id": run_id, "tracking_uri": _redact(uri)}}
    if run.info.experiment_id:
        src["mlflow"]["experiment_id"] = run.info.experiment_id
    for tag, key in (("mlflow.source.git.commit", "git_commit"), ("mlflow.source.name", "entry")):
        if tags.get(tag):
            src["mlflow"][key] = tags[tag]
    out["source"] = src
    return out


def tracking_uri(value: Any, base: Path) -> str:
    """A local store: ``sqlite:///…``, ``file:…``, or a path (``.db`` → sqlite, directory →
    file store) relative to the spec; default ``MLFLOW_TRACKING_URI``."""
    if value is None:
        env = settings().mlflow_tracking_uri
        if not env:
            return f"sqlite:///{(base / 'mlflow.db').resolve()}"
        value = env
    text = str(value)
    if "://" in text or text.startswith("file:"):
        return text
    p = (base / text).resolve()
    return f"sqlite:///{p}" if p.suffix == ".db" else p.as_uri()


def _redact(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//", uri)


def _number(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def split_metric(key: str, value: float) -> dict[str, Any]:
    for sep in ("/", "_", "."):
        head, _, rest = key.partition(sep)
        if rest and head.lower() in _SPLITS:
            return {"name": rest, "value": value, "split": _SPLITS[head.lower()]}
    return {"name": key, "value": value}


def host_hardware() -> dict[str, Any]:
    """CPU model, cores, memory and GPUs of this host, for the training record."""
    hw: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count() or 0}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                hw["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split()
        hw["memoryGiB"] = round(int(mem[1]) / (1 << 20), 1)
    except (OSError, IndexError, ValueError):
        pass
    gpus = nvidia_gpus()
    if gpus:
        hw["gpus"] = gpus
    return hw


def write_training_record(
    path: str | os.PathLike[str],
    *,
    start: float,
    end: float,
    hyperparameters: Mapping[str, Any] | None = None,
    metrics: Any = None,
    seeds: Mapping[str, Any] | None = None,
    hardware: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the JSON record a training script leaves for ``training.record`` (start/end are
    :func:`time.time` values; hardware defaults to this host's)."""
    rec = {
        "mediaType": "application/vnd.hepbundle.training-record.v1+json",
        "start": utc_timestamp(start),
        "end": utc_timestamp(end),
        "hyperparameters": dict(hyperparameters or {}),
        "metrics": list(normalise_metrics(metrics or {})),
        "seeds": dict(seeds or {}),
        "hardware": dict(hardware) if hardware is not None else host_hardware(),
    }
    Path(path).write_bytes(canonical_json(rec))
    return rec

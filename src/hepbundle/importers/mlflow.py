"""The ``mlflow`` importer: each registered model version of an MLflow store becomes a bundle.

SOURCE is a tracking URI (``sqlite:///…/mlflow.db``, ``file:///…/mlruns``) or a path (``*.db``
→ SQLite, a directory → file store), read with the ``mlflow`` client library. Version ``N`` of
registered model ``tau-id`` becomes ``<ns>/tau-id@N.0.0`` (``ns``: the mapping's namespace, else
``mlflow``; ``names:`` renames); its files are the model version's artifacts (``model/…``) and the
run's other artifacts (``artifacts/…``). The run's params, metrics, start/end, user, source commit
and tags become hyperparameters, metrics, training provenance, authors, code pin and
``extra.import.mlflow``; the model's ``requirements.txt`` (else ``conda.yaml``) becomes the
environment lock, recorded with what ``conda.yaml``/``python_env.yaml`` say and no fact of the
host running the migration; registered-model aliases (``champion``) become hepbundle aliases.
Only stores whose artifacts are on a local file system are read (no artifact download). For a
legacy file store the importer sets ``MLFLOW_ALLOW_FILE_STORE=true`` (if unset) in this process:
MLflow 3 refuses to open one otherwise. A model version whose artifacts hold an entry the scan
refuses (an unreadable file, a dangling link, a link leaving the run's artifacts…) is refused
whole, as a cms-data tag is: a version's artifacts are taken whole (the mapping has no
``skip:``), so fix the store and re-run.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import HepbundleError, SpecError
from ..extras import require
from ..provenance import imported_env_file, split_metric, tracking_uri
from ._mapping import COMMON_KEYS, ImportMap
from .base import (
    NO_PAYLOAD,
    ImportPlan,
    PlannedBundle,
    PlannedFile,
    Skipped,
    make_bundle,
    safe_name,
)
from .scan import path_refusal, scan_tree

__all__ = ["MlflowImporter"]

log = logging.getLogger("hepbundle")


def _local_dir(uri: str, what: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise SpecError(
            f"{what}: artifacts at {uri} are not on a local file system",
            hint="import from a store whose artifact root is a local directory",
        )
    return Path(unquote(parsed.path if parsed.scheme else uri))


def _files_under(
    base: Path,
    prefix: str,
    mapping: ImportMap,
    skip: Path | None,
    what: str,
    store: Path | None = None,
) -> tuple[list[PlannedFile], list[Skipped]]:
    """The artifacts below ``base`` (but for the directory ``skip``) placed under ``prefix``,
    and what the shared scan refused or skipped there (a link leaving the run's artifacts
    ``store``, default ``base``; an unreadable directory, a dangling link…), named ``<what>:
    <prefix>/<path>``."""
    if not base.is_dir():
        return [], []
    scan = scan_tree(base, allow_outside=[store] if store else (), outside_hint=None)
    cut = skip.relative_to(base).as_posix() if skip is not None and skip != base else None

    def kept(rel: str) -> bool:
        return cut is None or not (rel == cut or rel.startswith(cut + "/"))

    files = [
        PlannedFile(
            str(base / f.legacy),
            f"{prefix}/{f.legacy}",
            None,
            f.size,
            mapping.role(f.legacy, base / f.legacy),
            f.mtime_ns,
        )
        for f in scan.files
        if kept(f.legacy)
    ]
    left = [
        Skipped(f"{what}: {prefix}/{s.what}", s.reason) for s in scan.left_out() if kept(s.what)
    ]
    placed = [(f, path_refusal(f.dest)) for f in files]  # what the build would refuse
    left += [Skipped(f"{what}: {f.dest}", f"refused: {why}") for f, why in placed if why]
    return [f for f, why in placed if why is None], left


def _local_store(uri: str) -> Path | None:
    """The database file or store directory of a local tracking URI (else None)."""
    if uri.startswith("sqlite:///"):
        return Path(unquote(uri.removeprefix("sqlite:///").partition("?")[0]) or ".")
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    return None


class MlflowImporter:
    """Registered model versions of an MLflow tracking store (file or SQLite backend)."""

    kind = "mlflow"
    #: no ``skip:`` (a model version's artifacts are taken whole) and no ``bundles:``
    mapping_keys = COMMON_KEYS - {"skip"}

    def plan(self, source: str, mapping: ImportMap) -> ImportPlan:
        MlflowException = require("mlflow.exceptions").MlflowException
        MlflowClient = require("mlflow.tracking").MlflowClient
        uri = tracking_uri(source, Path.cwd())
        local = _local_store(uri)
        if local is not None and not local.exists():
            # the client would create an empty store there: never write into what we import
            raise SpecError(f"MLflow store {local} does not exist")
        if uri.startswith("file:"):
            # MLflow 3 refuses to open a file store unless asked to; importing one is exactly the
            # migration away from it that MLflow recommends, and the import only reads it
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        except MlflowException as e:
            raise SpecError(f"cannot open MLflow store {uri}: {str(e).splitlines()[0]}") from None
        bundles: list[PlannedBundle] = []
        skipped: list[Skipped] = []
        refused: list[Skipped] = []
        try:
            models = client.search_registered_models()
            for rm in sorted(models, key=lambda m: m.name):
                by_version: dict[str, list[str]] = {}
                for alias, v in (rm.aliases or {}).items():
                    by_version.setdefault(str(v), []).append(alias)
                versions = sorted(
                    client.search_model_versions(f"name='{rm.name}'"),
                    key=lambda mv: int(mv.version),
                )
                staged, why = stage_aliases(versions, set(rm.aliases or {}))
                for v, alias in staged.items():
                    by_version.setdefault(v, []).append(alias)
                skipped += [Skipped(rm.name, w) for w in why]
                for mv in versions:
                    if not mv.run_id:
                        skipped.append(Skipped(f"{rm.name} v{mv.version}", "no run recorded"))
                        continue
                    planned, left = self._bundle(
                        client,
                        uri,
                        rm,
                        mv,
                        sorted(by_version.get(str(mv.version), [])),
                        mapping,
                    )
                    skipped += left
                    if isinstance(planned, Skipped):
                        refused.append(planned)
                    else:
                        bundles.append(planned)
        except MlflowException as e:
            raise SpecError(f"cannot read MLflow store {uri}: {str(e).splitlines()[0]}") from None
        if not bundles and not skipped and not refused:
            raise SpecError(f"the MLflow store {uri} has no registered model versions")
        return ImportPlan(self.kind, uri, tuple(bundles), tuple(skipped), tuple(refused))

    @staticmethod
    def _bundle(
        client: Any, uri: str, rm: Any, mv: Any, aliases: list[str], mapping: ImportMap
    ) -> tuple[PlannedBundle | Skipped, list[Skipped]]:
        """The bundle of one model version, or its refusal when the model's artifacts are not
        where the store says (moved or deleted): an empty bundle, once signed and published,
        would block the real one for good. Also the artifacts left out (refused by the scan)."""
        run = client.get_run(mv.run_id)
        what = f"{rm.name} v{mv.version}"
        name = mapping.name(rm.name) or f"{mapping.namespace_or('mlflow')}/{safe_name(rm.name)}"
        source = str(mv.source)
        if source.startswith("runs:/"):
            rel = source.removeprefix("runs:/").partition("/")[2]
            model_dir = _local_dir(run.info.artifact_uri, what) / rel
        else:
            model_dir = _local_dir(client.get_model_version_download_uri(rm.name, mv.version), what)
        run_dir = _local_dir(run.info.artifact_uri, what)
        inside_run = run_dir in model_dir.parents
        files, left = _files_under(
            model_dir, "model", mapping, None, what, run_dir if inside_run else None
        )
        if not files:
            state = "is empty" if model_dir.is_dir() else "does not exist"
            return Skipped(
                what,
                f"{NO_PAYLOAD}the model's artifact directory {model_dir} {state} (source "
                f"{source}; moved or deleted?)",
            ), left
        more, left_run = _files_under(run_dir, "artifacts", mapping, model_dir, what)
        files += more
        left += left_run
        bad = [s for s in left if s.reason.startswith("refused: ")]
        if bad:
            # published without them, the version would be incomplete for good
            first = bad[0].what.removeprefix(f"{what}: ")
            return Skipped(
                what,
                f"refused: {len(bad)} artifact(s) cannot be imported ({first}: "
                f"{bad[0].reason.removeprefix('refused: ')}); a version's artifacts are taken "
                "whole: fix them in the store and re-run",
            ), left
        tags = run.data.tags
        meta = mapping.meta_for()
        meta.setdefault("summary", (mv.description or rm.description or "")[:500])
        license_ = (mv.tags or {}).get("license") or (rm.tags or {}).get("license")
        if license_ and not meta.get("license"):
            meta["license"] = license_
        notes: dict[str, str] = {}
        user = str(tags.get("mlflow.user") or "")
        if user and not meta.get("authors"):
            if user in SYSTEM_ACCOUNTS:
                notes["authors"] = (
                    f"mlflow.user is {user!r}, an account, not a person (kept in "
                    "extra.import.mlflow.user): set defaults.authors"
                )
            else:
                meta["authors"] = [user]
        commit = tags.get("mlflow.source.git.commit")
        repo = tags.get("mlflow.source.git.repoURL") or _remote(tags.get("mlflow.source.name"))
        if commit and repo and "code" not in meta:
            meta["code"] = {"repository": repo, "commit": commit}
        elif "code" not in meta and tags.get("mlflow.source.name"):
            notes["code"] = (
                f"mlflow.source.name is {tags['mlflow.source.name']!r}, no repository"
                + (" URL" if commit else " URL and no mlflow.source.git.commit")
                + ": set defaults.code"
            )
        if "metrics" not in meta and run.data.metrics:
            # the same records the training capture derives, so the two agree
            meta["metrics"] = [split_metric(k, v) for k, v in sorted(run.data.metrics.items())]
        if "data" not in meta:
            data = _dataset_refs(run)
            if data:
                meta["data"] = data
        if "validity" not in meta:
            scope = _validity_tag(mv, rm, what)
            if isinstance(scope, Skipped):
                return scope, left
            if scope is not None:
                meta["validity"] = scope
        meta["training"] = {"mlflow": {"run_id": mv.run_id, "tracking_uri": uri}}
        env, env_note = _model_environment(model_dir, {f.dest for f in files})
        if env:
            meta["environment"] = env
        if env_note:
            notes["environment"] = env_note
        extra_meta: dict[str, Any] = {}
        io = _io_signature(model_dir)
        if io is not None:
            extra_meta["io"] = io
        user_tags = {k: v for k, v in sorted(tags.items()) if not k.startswith("mlflow.")}
        record = {
            "registered_model": rm.name,
            "version": str(mv.version),
            "run_id": mv.run_id,
            "source": source,
            "tags": user_tags,
            "params": dict(sorted(run.data.params.items())),
            **({"user": user} if user else {}),
            **({"stage": stage} if (stage := _stage(mv)) else {}),
        }
        return make_bundle(
            name=name,
            version=f"{mv.version}.0.0",
            files=files,
            meta=meta,
            origin=what,
            source_root=Path("/"),
            extra_meta={**extra_meta, "extra": {"import": {"kind": "mlflow", "mlflow": record}}},
            aliases=aliases,
            rule=f"registered model version {mv.version} → {mv.version}.0.0",
            notes=notes,
        ), left


#: ``mlflow.user`` values that are accounts, not people: never an author (a run started in a
#: container or a CI job records ``root``)
SYSTEM_ACCOUNTS = frozenset({"root", "nobody", "jovyan", "runner", "daemon"})

#: the registry stages a hepbundle alias is made of (lower-cased), when one version has it
STAGE_ALIASES = ("Production", "Staging")


def _remote(source_name: str | None) -> str | None:
    """``mlflow.source.name`` as a code repository when it is a remote URL (a project run from
    git: ``https://github.com/…``, ``git@host:path``); None for a script path or a local
    project (``/home/u/train.py``, ``file:///…``), which no one can clone."""
    text = str(source_name or "").strip()
    if re.match(r"^(https?|ssh|git)://[^/\s]+/\S+$", text) or re.match(
        r"^[\w.-]+@[\w.-]+:\S+$", text
    ):
        return text
    return None


def _stage(mv: Any) -> str | None:
    """The model version's registry stage (``Production``, ``Staging``, ``Archived``; None for
    MLflow's ``None``)."""
    stage = str(getattr(mv, "current_stage", None) or "")
    return stage if stage and stage != "None" else None


def stage_aliases(versions: list[Any], taken: set[str]) -> tuple[dict[str, str], list[str]]:
    """The aliases the registry stages give (``production`` → version, when exactly one
    version of the model is in ``Production`` and no registered-model alias has that name),
    and why the others give none."""
    out: dict[str, str] = {}
    why: list[str] = []
    for stage in STAGE_ALIASES:
        holders = [str(mv.version) for mv in versions if _stage(mv) == stage]
        alias = stage.lower()
        if len(holders) == 1 and alias not in taken:
            out[holders[0]] = alias
        elif len(holders) > 1:
            why.append(
                f"stage {stage} on versions {', '.join(holders)}: no alias {alias!r} (which "
                "one?); recorded in each version's extra.import.mlflow.stage"
            )
        elif holders:
            why.append(f"stage {stage}: no alias {alias!r}, a registered-model alias has it")
    return out, why


#: the model-version (else registered-model) tag holding a validity scope: the section of
#: bundle-spec/validity.md as JSON or YAML text
VALIDITY_TAG = "validity"


def _validity_tag(mv: Any, rm: Any, what: str) -> dict[str, Any] | Skipped | None:
    """The validity scope the store's ``validity`` tag says (None: no tag); a tag that is not
    a readable scope refuses the version (a scope silently dropped would admit everything)."""
    from .._yaml import parse_yaml
    from ..errors import FormatError
    from ..validity import Scope, plain_times

    text = (mv.tags or {}).get(VALIDITY_TAG) or (rm.tags or {}).get(VALIDITY_TAG)
    if not text:
        return None
    where = f"MLflow tag {VALIDITY_TAG} of {what}"
    try:
        doc, _ = parse_yaml(str(text), where, aliases=False)
        return Scope.from_json(plain_times(doc), where=where).to_json()
    except (SpecError, FormatError) as e:
        return Skipped(what, f"refused: {e.message}")


#: the environment files MLflow writes next to a logged model → the spec's environment key
_ENV_FILES = (
    ("requirements.txt", "lock"),
    ("conda.yaml", "conda"),
    ("python_env.yaml", "python_env"),
)


def _model_environment(model_dir: Path, dests: set[str]) -> tuple[dict[str, Any], str]:
    """The spec's ``environment`` section for the environment files MLflow logged with the
    model (``requirements.txt`` the lock, else ``conda.yaml``), marked ``imported`` so the
    build records what they say and no fact of this host; and the gap report's note. A
    ``conda.yaml`` or ``python_env.yaml`` that cannot be read is left out, and the note says so."""
    section: dict[str, Any] = {}
    used: list[str] = []
    bad: list[str] = []
    pythons: dict[str, str] = {}
    for name, key in _ENV_FILES:
        path = model_dir / name
        if f"model/{name}" not in dests:
            continue
        if key != "lock":
            try:
                pythons[key] = str(imported_env_file(path, key).get("python") or "")
            except SpecError as e:
                bad.append(f"{name} left out: {e.message}")
                continue
        section[key] = str(path)
        used.append(name)
    # the build's choice too: python_env.yaml (what MLflow restores with) before conda.yaml
    python = pythons.get("python_env") or pythons.get("conda")
    if "lock" not in section and "conda" in section:
        section["lock"] = section["conda"]
    if "lock" not in section:
        return {}, "; ".join(bad)
    section["imported"] = "mlflow"
    note = (
        f"imported from the model's {', '.join(used)}"
        + (f" (Python {python})" if python else "")
        + ": the training host (OS, machine, CUDA) is unknown"
    )
    return section, "; ".join([note, *bad])


#: MLflow column types → numpy names (``binary``, ``datetime`` and the rest have none)
_COLUMN_TYPES = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "string",
}


def _io_signature(model_dir: Path) -> dict[str, Any] | None:
    """The I/O signature of the MLflow model signature in ``model_dir/MLmodel``, as the pyfunc
    interface takes it (``model: model/MLmodel``, so the loaders do not hold an ONNX graph to
    it): a tensor-based schema gives its tensors (``-1`` on the first axis is the batch); a
    column-based one gives one 1-D tensor per column. None when there is none, or a column of
    a type numpy cannot say (the build then reads the packed model itself)."""
    from ..iosig import IOSignature

    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        return None
    Model = require("mlflow.models").Model
    try:
        signature = Model.load(str(mlmodel)).signature
    except Exception as e:  # a damaged MLmodel: the import goes on without a signature
        log.warning("%s: no I/O signature imported: %s", mlmodel, str(e).splitlines()[0])
        return None
    if signature is None:
        return None
    kinds = []
    for kind, schema in (("input", signature.inputs), ("output", signature.outputs)):
        tensors = []
        for i, spec in enumerate(schema.inputs if schema is not None else ()):
            name = spec.name or (kind if len(schema.inputs) == 1 else f"{kind}_{i}")
            if schema.is_tensor_spec():
                shape = [
                    ("batch" if a == 0 else None) if d == -1 else int(d)
                    for a, d in enumerate(spec.shape)
                ]
                tensors.append({"name": name, "dtype": str(spec.type), "shape": shape})
            else:
                dtype = _COLUMN_TYPES.get(spec.type.name)
                if dtype is None:
                    log.warning(
                        "%s: column %s of type %s: no I/O signature imported",
                        mlmodel,
                        name,
                        spec.type.name,
                    )
                    return None
                tensors.append({"name": name, "dtype": dtype, "shape": ["batch"]})
        kinds.append(tensors)
    io = {"model": "model/MLmodel", "framework": "mlflow", "inputs": kinds[0], "outputs": kinds[1]}
    try:
        return IOSignature.from_json(io, source=f"{mlmodel} signature").to_json()
    except HepbundleError as e:
        log.warning("no I/O signature imported: %s", e.message)
        return None


#: run tags naming the training data: ``dataset``, or ``dataset.<split>`` (train, test, …)
_DATASET_TAG = "dataset"


def _dataset_refs(run: Any) -> list[dict[str, Any]]:
    """Typed Rucio data references for a run's datasets that are Rucio DIDs: the run tag
    ``dataset`` (or ``dataset.train``, ``dataset.test``, …: the suffix is the split) and the
    datasets logged with ``mlflow.log_input`` whose name or source is a DID (their context tag
    ``mlflow.data.context`` gives the split). Anything else is left to the import map."""
    from ..remote.rucio import is_did

    refs: dict[str, dict[str, Any]] = {}
    for key, value in sorted(run.data.tags.items()):
        if key != _DATASET_TAG and not key.startswith(_DATASET_TAG + "."):
            continue
        did = str(value).strip()
        if is_did(did):
            split = key.partition(".")[2]
            ref = {"type": "rucio", "did": did, "imported": f"mlflow run tag {key}"}
            refs.setdefault(did, ref | ({"split": split} if split in _SPLITS else {}))
    inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []
    for di in inputs:
        ds = di.dataset
        context = next((t.value for t in di.tags or [] if t.key == "mlflow.data.context"), None)
        for did in (str(ds.name or "").strip(), _source_did(ds.source)):
            if did and is_did(did):
                ref = {"type": "rucio", "did": did, "imported": f"mlflow dataset input {ds.name}"}
                refs.setdefault(did, ref | ({"split": context} if context in _SPLITS else {}))
                break
    return list(refs.values())


_SPLITS = ("train", "validation", "test", "calibration")


def _source_did(source: Any) -> str:
    """The DID in an MLflow dataset source: a bare DID, ``rucio:DID`` or JSON with a DID value."""
    import json

    text = str(source or "").strip()
    if text.startswith("rucio:"):
        return text.removeprefix("rucio:")
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    if isinstance(obj, dict):
        for key in ("did", "uri", "url", "path", "source"):
            v = str(obj.get(key) or "")
            if v:
                return v.removeprefix("rucio:")
    return ""

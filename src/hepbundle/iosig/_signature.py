"""The I/O signature as values: tensors, features, normalisation; read from and written to the
manifest's ``io`` section (bundle-spec/io.md), compared with what a model says."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import FormatError, SpecError
from ..spec import validate
from ._batch import IOReport
from ._batch import check as _check
from ._batch import normalise as _normalise

__all__ = [
    "DTYPES",
    "Dim",
    "Feature",
    "IOSignature",
    "Normalisation",
    "Tensor",
    "dims_agree",
    "format_shape",
    "tensor_problems",
]

#: a dimension: a size, a symbol (``"batch"``: one size for every tensor naming it), or any size
Dim = int | str | None

#: element types a signature records, by their numpy names (io.schema.json ``$defs/dtype``)
DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "string",
)


@dataclass(frozen=True, slots=True)
class Normalisation:
    """What is applied to a raw value before the model: ``(x + offset) * scale`` (lwtnn's
    convention) or ``(x - mean) / std``, kept as the one affine map ``x * a + b``."""

    kind: str  # "offset/scale" or "mean/std"
    first: float  # offset or mean
    second: float  # scale or std

    @property
    def coefficients(self) -> tuple[float, float]:
        """``(a, b)`` of ``x * a + b``."""
        if self.kind == "offset/scale":
            return self.second, self.first * self.second
        return 1.0 / self.second, -self.first / self.second

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Normalisation:
        if "offset" in d:
            return cls("offset/scale", float(d["offset"]), float(d["scale"]))
        return cls("mean/std", float(d["mean"]), float(d["std"]))

    def to_json(self) -> dict[str, float]:
        if self.kind == "offset/scale":
            return {"offset": self.first, "scale": self.second}
        return {"mean": self.first, "std": self.second}

    def __str__(self) -> str:
        shift = self.first if self.kind == "offset/scale" else -self.first
        if shift == 0 and self.second == 1:
            return "x (as is)"
        x = "x" if shift == 0 else f"(x {'+' if shift > 0 else '-'} {abs(shift):g})"
        return f"{x} × {self.second:g}" if self.kind == "offset/scale" else f"{x} / {self.second:g}"


@dataclass(frozen=True, slots=True)
class Feature:
    """One element of the last axis of an input: name, unit, normalisation, allowed raw range."""

    name: str
    unit: str | None = None
    description: str | None = None
    normalisation: Normalisation | None = None
    min: float | None = None
    max: float | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Feature:
        rng = d.get("range") or {}
        norm = d.get("normalisation")
        return cls(
            name=d["name"],
            unit=d.get("unit"),
            description=d.get("description"),
            normalisation=Normalisation.from_json(norm) if norm else None,
            min=None if rng.get("min") is None else float(rng["min"]),
            max=None if rng.get("max") is None else float(rng["max"]),
        )

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.unit is not None:
            d["unit"] = self.unit
        if self.description:
            d["description"] = self.description
        if self.normalisation is not None:
            d["normalisation"] = self.normalisation.to_json()
        rng = {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}
        if rng:
            d["range"] = rng
        return d

    @property
    def range_text(self) -> str:
        if self.min is None and self.max is None:
            return ""
        lo = "−∞" if self.min is None else f"{self.min:g}"
        hi = "+∞" if self.max is None else f"{self.max:g}"
        return f"[{lo}, {hi}]"


@dataclass(frozen=True, slots=True)
class Tensor:
    """One input or output of the model."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    description: str | None = None
    precision: str | None = None
    features: tuple[Feature, ...] = ()
    classes: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Tensor:
        return cls(
            name=d["name"],
            dtype=d["dtype"],
            shape=tuple(d["shape"]),
            description=d.get("description"),
            precision=d.get("precision"),
            features=tuple(Feature.from_json(f) for f in d.get("features") or ()),
            classes=tuple(d.get("classes") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.description:
            d["description"] = self.description
        if self.precision:
            d["precision"] = self.precision
        if self.features:
            d["features"] = [f.to_json() for f in self.features]
        if self.classes:
            d["classes"] = list(self.classes)
        return d

    @property
    def width(self) -> int | None:
        """The fixed size of the last axis, if the shape says one."""
        last = self.shape[-1] if self.shape else None
        return last if isinstance(last, int) else None

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)


@dataclass(frozen=True)
class IOSignature:
    """A model's inputs and outputs as the manifest's ``io`` section records them; ``check`` and
    ``normalise`` (in :mod:`hepbundle.iosig`) read batches against it."""

    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...] = ()
    model: str | None = None
    framework: str | None = None
    _by_name: dict[str, Tensor] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({t.name: t for t in self.inputs})

    @classmethod
    def from_json(
        cls, obj: Any, *, source: str = "io", schema_checked: bool = False
    ) -> IOSignature:
        """Validate an ``io`` section (schema, then the rules a schema cannot say) and read it;
        :class:`FormatError` naming the field otherwise. ``schema_checked``: the manifest
        reader already validated it against the schema (only the other rules are checked)."""
        if not schema_checked:
            try:
                validate(obj, "io.schema.json", filename=source)
            except SpecError as e:
                raise FormatError(str(e)) from None
        sig = cls(
            inputs=tuple(Tensor.from_json(t) for t in obj["inputs"]),
            outputs=tuple(Tensor.from_json(t) for t in obj.get("outputs") or ()),
            model=obj.get("model"),
            framework=obj.get("framework"),
        )
        problems = sig.problems()
        if problems:
            raise FormatError(f"{source}: {problems[0]}")
        return sig

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }
        if self.model:
            d["model"] = self.model
        if self.framework:
            d["framework"] = self.framework
        return d

    def problems(self) -> list[str]:
        """Rules beyond the schema: unique tensor and feature names, one feature (class) per
        element of a fixed last axis, features only on inputs."""
        out: list[str] = []
        for kind, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            seen = _duplicates(t.name for t in tensors)
            out += [f"{kind}: tensor {n!r} appears twice" for n in seen]
            for i, t in enumerate(tensors):
                where = f"{kind}[{i}] ({t.name})"
                if t.features and kind == "outputs":
                    out.append(f"{where}: features describe inputs; an output has classes")
                for what, names in (
                    ("features", [f.name for f in t.features]),
                    ("classes", t.classes),
                ):
                    if names and not t.shape:
                        out.append(f"{where}: {what} need a tensor of at least one axis")
                    elif names and t.width is not None and len(names) != t.width:
                        out.append(
                            f"{where}: {len(names)} {what} for a last axis of {t.width} "
                            f"(shape {format_shape(t.shape)})"
                        )
                    out += [f"{where}: {what[:-1]} {n!r} appears twice" for n in _duplicates(names)]
        return out

    def check(self, batch: Any, *, ranges: bool = True) -> IOReport:
        """Read ``batch`` (a mapping name → array, or a structured array) against the signature:
        inputs present, dtypes, shapes and, with ``ranges``, every feature inside its allowed
        range. Returns an :class:`IOReport`; ``.raise_for_problems()`` turns it into a
        :class:`~hepbundle.errors.BatchError`."""
        return _check(self, batch, ranges=ranges)

    def normalise(self, batch: Any) -> dict[str, Any]:
        """Each input as the model takes it (features stacked in the recorded order, cast to the
        input's dtype, the recorded normalisation applied): ``session.run(None,
        b.io.normalise(batch))``."""
        return _normalise(self, batch)

    def input(self, name: str) -> Tensor:
        """The input tensor ``name``; :class:`KeyError` if there is none."""
        return self._by_name[name]

    @property
    def feature_names(self) -> list[str]:
        """Every input feature's name, tensor by tensor."""
        return [f.name for t in self.inputs for f in t.features]

    def rows(self) -> list[dict[str, str]]:
        """One row per input feature (or per tensor without features) and per output, for tables
        (``hepbundle show``, the catalogue site): tensor, index, name, unit, normalisation,
        range."""
        out = []
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            for t in tensors:
                head = {
                    "kind": kind,
                    "tensor": t.name,
                    "type": f"{t.dtype}{format_shape(t.shape)}"
                    + (f" ({t.precision})" if t.precision else ""),
                }
                if t.features:
                    for i, f in enumerate(t.features):
                        out.append(
                            {
                                **head,
                                "index": str(i),
                                "name": f.name,
                                "unit": f.unit or "",
                                "normalisation": str(f.normalisation or ""),
                                "range": f.range_text,
                            }
                        )
                else:
                    meaning = ", ".join(t.classes)
                    out.append(
                        {
                            **head,
                            "index": "",
                            "name": meaning,
                            "unit": "",
                            "normalisation": "",
                            "range": "",
                        }
                    )
        return out


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dup: list[str] = []
    for n in names:
        if n in seen and n not in dup:
            dup.append(n)
        seen.add(n)
    return dup


def format_shape(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def dims_agree(a: Dim, b: Dim) -> bool:
    """Two dimensions describe the same axis: equal sizes, or neither a fixed size (symbols are
    names for people; ONNX's ``N`` and Keras's ``None`` are both the batch)."""
    if isinstance(a, int) or isinstance(b, int):
        return a == b
    return True


def tensor_problems(
    recorded: Sequence[Tensor], actual: Sequence[Tensor], kind: str, *, order: bool = True
) -> list[str]:
    """How the ``actual`` tensors (what a model says) differ from the ``recorded`` ones: names,
    their order, dtypes, ranks and fixed dimensions."""
    out: list[str] = []
    names = [t.name for t in actual]
    want = [t.name for t in recorded]
    missing = [n for n in want if n not in names]
    extra = [n for n in names if n not in want]
    if missing:
        out.append(
            f"{kind} {', '.join(missing)} recorded but not in the model (it has {', '.join(names) or 'none'})"
        )
    if extra:
        out.append(f"{kind} {', '.join(extra)} in the model but not recorded")
    if order and not missing and not extra and names != want:
        out.append(f"{kind} in the order {', '.join(names)}, recorded as {', '.join(want)}")
    by_name = {t.name: t for t in actual}
    for r in recorded:
        a = by_name.get(r.name)
        if a is None:
            continue
        if a.dtype != r.dtype:
            out.append(f"{kind[:-1]} {r.name}: dtype {a.dtype}, recorded as {r.dtype}")
        if len(a.shape) != len(r.shape) or not all(
            dims_agree(x, y) for x, y in zip(a.shape, r.shape, strict=True)
        ):
            out.append(
                f"{kind[:-1]} {r.name}: shape {format_shape(a.shape)}, recorded as "
                f"{format_shape(r.shape)}"
            )
    return out

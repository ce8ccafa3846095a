"""The starter files ``hepbundle init`` writes, and the placeholders a build refuses.

The templates live in ``hepbundle/templates/``. Their placeholder values (the one-line
summary, "Your Name <you@cern.ch>", an unedited model card) are read from the templates
themselves, so the check and the template cannot drift apart.
"""

from __future__ import annotations

import functools
import glob
import json
import logging
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import BuildError
from .spec import SPEC_FILENAME, BundleSpec, normalise_person

__all__ = ["check_placeholders", "write_starter"]

log = logging.getLogger("hepbundle")

_SPEC_TEMPLATE = "hepbundle.yaml"
_CARD_TEMPLATE = "MODEL_CARD.md"
_NAME = "{name}"


def _template(name: str) -> str:
    return (resources.files("hepbundle") / "templates" / name).read_text(encoding="utf-8")


@functools.cache
def _starter() -> dict[str, Any]:
    data = yaml.safe_load(_template(_SPEC_TEMPLATE).replace(_NAME, "ns/name"))
    return data if isinstance(data, dict) else {}


def _starter_spec(name: str, summary: str | None, authors: Sequence[str]) -> str:
    """The template with ``name``, and ``summary``/``authors`` in place of the placeholders."""
    text = _template(_SPEC_TEMPLATE).replace(_NAME, name)
    if summary:
        placeholder = f"summary: {_starter()['summary']}\n"
        text = text.replace(placeholder, f"summary: {json.dumps(summary)}\n", 1)
    if authors:
        block = "".join(f"  - {json.dumps(a)}\n" for a in authors)
        pattern = re.compile(r"^authors:\n(?:  .*\n)+", re.M)
        text = pattern.sub(lambda _: f"authors:\n{block}", text, count=1)
    return text


def write_starter(
    directory: Path,
    name: str,
    *,
    summary: str | None = None,
    authors: Sequence[str] = (),
    force: bool = False,
) -> list[Path]:
    """Write ``hepbundle.yaml`` and ``MODEL_CARD.md`` for ``name`` into ``directory`` (with
    ``summary`` and ``authors`` when given, else placeholders a build refuses), and the folders
    the starter's ``files:`` globs name (``model/``), so ``cp model.onnx DIR/model/`` works.
    Refuses to overwrite unless ``force``; returns what it wrote."""
    targets = {SPEC_FILENAME: _SPEC_TEMPLATE, "MODEL_CARD.md": _CARD_TEMPLATE}
    existing = [directory / t for t in targets if (directory / t).exists()]
    if existing and not force:
        raise BuildError(
            f"{existing[0]} already exists",
            hint="pass --force (force=True) to overwrite it",
        )
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    texts = {
        SPEC_FILENAME: _starter_spec(name, summary, authors),
        "MODEL_CARD.md": _template(_CARD_TEMPLATE).replace(_NAME, name),
    }
    for target in targets:
        (directory / target).write_text(texts[target], encoding="utf-8")
        written.append(directory / target)
    for rule in _starter().get("files") or []:
        pattern = str(rule.get("path", "")) if isinstance(rule, dict) else ""
        literal = [p for p in Path(pattern).parts if not glob.has_magic(p)]
        folder = Path(*literal) if literal and glob.has_magic(pattern) else None
        if folder is not None and not (directory / folder).exists():
            (directory / folder).mkdir(parents=True)
            written.append(directory / folder)
    return written


def check_placeholders(spec: BundleSpec) -> None:
    """:class:`BuildError` when the spec still holds what ``hepbundle init`` wrote as a
    placeholder (summary, authors): a bundle that says nothing true about itself must not be
    signed. An unedited model card is a warning (the card is prose; the build still says what
    was packed)."""
    starter = _starter()
    if spec.summary and spec.summary == starter.get("summary"):
        raise BuildError(
            f"{spec.where('summary')}summary: still the template's {spec.summary!r}",
            hint="say in one line what this model does",
        )
    fake = [normalise_person(a) for a in starter.get("authors") or []]
    names = {a.get("name") for a in fake} - {None, ""}
    emails = {a.get("email") for a in fake} - {None, ""}
    for i, person in enumerate(spec.authors):
        if person.get("name") in names or person.get("email") in emails:
            shown = person.get("name") or person.get("email")
            raise BuildError(
                f"{spec.where('authors', i)}authors: {shown!r} is the template's placeholder",
                hint="name the people responsible for this model",
            )
    if spec.model_card:
        card = spec.base_dir / spec.model_card
        try:
            text = card.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return  # the build reports an unreadable card itself
        if text.strip() == _template(_CARD_TEMPLATE).replace(_NAME, spec.name).strip():
            log.warning(
                "%s is still the unedited template: fill in at least intended use, inputs, "
                "outputs and training data",
                card,
            )

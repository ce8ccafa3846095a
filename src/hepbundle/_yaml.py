"""YAML loading that remembers the line of every value, so errors can name ``file:line: field``.

Bounded against hostile files: at most :data:`~hepbundle.limits.MAX_YAML_BYTES` bytes, no NUL or
other characters YAML forbids (one clear error, not a reader traceback), nesting at most
:data:`~hepbundle.limits.MAX_YAML_DEPTH` deep, and at most :data:`~hepbundle.limits.MAX_YAML_NODES`
values once aliases are expanded (a "billion laughs" document is refused before anything walks
it). Files where aliases serve no purpose (trust policies, import maps) refuse them outright.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import HepbundleError, SpecError
from .limits import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, clip
from .regular import read_regular

if TYPE_CHECKING:
    import yaml  # imported where YAML is read: a command reading none does not pay ~10 ms

__all__ = ["LineMap", "check_events", "field_name", "load_yaml", "parse_yaml", "read_yaml_text"]

#: JSON-pointer-like path (keys and list indices) → 1-based line number in the YAML file
LineMap = dict[tuple[str | int, ...], int]


def field_name(path: tuple[str | int, ...]) -> str:
    """``('files', 0, 'role')`` → ``files[0].role``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def load_yaml(path: Path, *, what: str = "YAML file", aliases: bool = True) -> tuple[Any, LineMap]:
    """Load one YAML document safely; return the data and the line of each value.

    Duplicate mapping keys, which PyYAML silently lets the last one win, are an error here.
    ``aliases=False`` refuses anchors and aliases (files where they serve no purpose).
    """
    return parse_yaml(read_yaml_text(path, what=what), str(path), aliases=aliases)


def read_yaml_text(path: Path, *, what: str = "YAML file") -> str:
    """The text of a YAML file (a regular file, at most :data:`MAX_YAML_BYTES`, UTF-8), or a
    one-line :class:`SpecError` naming ``what`` and why."""
    try:
        raw = read_regular(path, limit=MAX_YAML_BYTES)
    except FileNotFoundError:
        raise SpecError(f"{what} {path} does not exist") from None
    except HepbundleError as e:
        raise SpecError(f"cannot read {what} {path}: {e.message}") from None
    except OSError as e:
        raise SpecError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(
            f"cannot read {what} {path}: not UTF-8 ({e.reason} at byte {e.start})"
        ) from None
    return text


def parse_yaml(text: str, filename: str, *, aliases: bool = True) -> tuple[Any, LineMap]:
    """Parse YAML text (see :func:`load_yaml`)."""
    import yaml

    check_events(text, filename, aliases=aliases)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: LineMap = {}
        _index(node, lines, filename)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        raise SpecError(_marked(filename, e)) from None
    except yaml.YAMLError as e:
        raise SpecError(f"{filename}: invalid YAML: {clip(str(e), 300)}") from None
    except (RecursionError, ValueError, TypeError, OverflowError, AttributeError, LookupError) as e:
        # constructors of odd scalars (a timestamp out of range…) raise plain Python errors
        raise SpecError(f"{filename}: invalid YAML: {clip(str(e), 300)}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def check_events(text: str, filename: str, *, aliases: bool = True) -> None:
    """Scan ``text``'s event stream (PyYAML's parser is a state machine: no recursion) and
    refuse it when it is too large, nests too deeply, uses aliases where they are refused, or
    would expand to too many values through aliases."""
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise SpecError(f"{filename}: over the limit of {MAX_YAML_BYTES:,} bytes of YAML")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SpecError(f"{filename}:{line}: invalid YAML: a NUL byte")
    depth = 0
    # values per anchor (an alias adds the whole anchored subtree again), and per open node
    sizes: dict[str, int] = {}
    open_nodes: list[list[Any]] = [[None, 0]]  # [anchor, values so far]
    total = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                if not aliases:
                    raise SpecError(
                        f"{filename}:{_line(event)}: aliases (*{event.anchor}) are "
                        "not allowed in this file",
                        hint="write the value out in full",
                    )
                add = sizes.get(str(event.anchor), 1)
                open_nodes[-1][1] += add
                total += add
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    if not aliases:
                        raise _anchor_refused(filename, event)
                    sizes[event.anchor] = 1
                open_nodes[-1][1] += 1
                total += 1
            elif isinstance(event, yaml.CollectionStartEvent):
                if event.anchor is not None and not aliases:
                    raise _anchor_refused(filename, event)
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise SpecError(
                        f"{filename}:{_line(event)}: nested deeper than {MAX_YAML_DEPTH} levels"
                    )
                open_nodes.append([event.anchor, 1])
                total += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                anchor, count = open_nodes.pop()
                open_nodes[-1][1] += count
                if anchor is not None:
                    sizes[anchor] = count
            if total > MAX_YAML_NODES:
                raise SpecError(
                    f"{filename}: more than {MAX_YAML_NODES:,} values once aliases are expanded",
                    hint="an alias bomb, or a file far larger than any spec or policy needs",
                )
    except yaml.MarkedYAMLError as e:
        raise SpecError(_marked(filename, e)) from None
    except yaml.YAMLError as e:
        raise SpecError(f"{filename}: invalid YAML: {clip(str(e), 300)}") from None


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 0


def _anchor_refused(filename: str, event: yaml.NodeEvent) -> SpecError:
    return SpecError(
        f"{filename}:{_line(event)}: anchors (&{event.anchor}) are not allowed in this file",
        hint="write the value out in full",
    )


def _marked(filename: str, e: yaml.MarkedYAMLError) -> str:
    mark = e.problem_mark or e.context_mark
    line = f":{mark.line + 1}" if mark else ""
    return f"{filename}{line}: invalid YAML: {clip(str(e.problem or e.context), 300)}"


def _index(root: yaml.Node, lines: LineMap, filename: str) -> None:
    """Line of every value, iteratively; a node reached again through an alias is not walked
    again (its values keep the lines of the anchored original)."""
    import yaml

    seen_nodes: set[int] = set()
    key_lines: LineMap = {}
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines[path] = node.start_mark.line + 1
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                key = str(k.value)
                if key in seen:
                    raise SpecError(
                        f"{filename}:{k.start_mark.line + 1}: {field_name((*path, key))}: "
                        "key given twice"
                    )
                seen.add(key)
                stack.append((v, (*path, key)))
                key_lines[(*path, key)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in enumerate(node.value))
    lines.update(key_lines)  # a key's own line wins over its value's

"""Plain-text rendering of bundles for the terminal (show, find)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..bundle import Bundle
from ..errors import FormatError, HepbundleError
from ..iosig import IOSignature
from ..validity import Scope
from ._common import human_size

if TYPE_CHECKING:
    from ..resolver import Located

__all__ = ["catalog_lines", "catalog_summary", "human_size", "render_bundle", "render_markdown"]


#: files listed per role before `show` summarises the rest (an hls4ml project has ~100)
_FILES_PER_ROLE = 12


def render_bundle(
    b: Bundle, *, card: bool = True, all_files: bool = False, catalog: Sequence[str] = ()
) -> str:
    """The summary `show` prints; ``catalog`` (:func:`catalog_lines`) goes right under the
    title, so a yank notice is the first thing read."""
    m = b.manifest
    meta: dict[str, Any] = dict(m.meta)
    lines = [
        click.style(f"{m.ref}", bold=True)
        + (f" — {meta['summary']}" if meta.get("summary") else ""),
        *catalog,
    ]
    lines.append(f"  path      {b.root}")
    lines.append(f"  manifest  sha256:{b.manifest_digest}")
    lines.append(f"  digests   {m.algorithm} (every file entry)")
    lines.append(f"  created   {m.created}")
    if meta.get("authors"):
        lines.append("  authors   " + ", ".join(_person(a) for a in meta["authors"]))
    for key in ("license", "framework"):
        if meta.get(key):
            lines.append(f"  {key:<9} {meta[key]}")
    if meta.get("tags"):
        lines.append("  tags      " + ", ".join(meta["tags"]))
    by_role: dict[str, list[Any]] = defaultdict(list)
    for f in m.files:
        by_role[f.role].append(f)
    lines.append(f"files ({len(m.files)}, {human_size(sum(f.size for f in m.files))})")
    for role in sorted(by_role):
        entries = by_role[role]
        shown = (
            entries if all_files or len(entries) <= _FILES_PER_ROLE else entries[:_FILES_PER_ROLE]
        )
        lines.append(f"  {role}:")
        lines.extend(f"    {f.path:<48} {human_size(f.size):>10}  {f.digest[:12]}" for f in shown)
        if len(shown) < len(entries):
            rest = entries[len(shown) :]
            lines.append(
                f"    … and {len(rest)} more ({human_size(sum(f.size for f in rest))}; --all-files lists them)"
            )
    if meta.get("metrics"):
        lines.append("metrics")
        for r in meta["metrics"]:
            split = f" [{r['split']}]" if r.get("split") else ""
            lines.append(f"  {r['name']}{split}: {r['value']}")
    if meta.get("hyperparameters"):
        lines.append("hyperparameters")
        lines.extend(f"  {k}: {v}" for k, v in sorted(meta["hyperparameters"].items()))
    prov = meta.get("provenance") or {}
    if prov or meta.get("data") or meta.get("parents"):
        lines.append("provenance")
        code = prov.get("code") or {}
        if code:
            dirty = " (dirty)" if code.get("dirty") else ""
            lines.append(
                f"  code      {code.get('remote') or code.get('path', '')} @ {code.get('commit', '?')}{dirty}"
            )
            if code.get("command"):
                lines.append(f"  command   {code['command']}")
        env = prov.get("environment") or {}
        if env:
            fw = ", ".join(f"{k} {v}" for k, v in (env.get("frameworks") or {}).items())
            lock = env.get("lock") or {}
            lines.append(
                f"  env       {fw or 'no known framework'} "
                f"({lock.get('packages', '?')} packages locked, {lock.get('format', '?')})"
            )
            if env.get("imported"):
                python = f"Python {env['python']}; " if env.get("python") else ""
                lines.append(
                    f"  env from  {lock.get('source') or env['imported']} ({python}training host "
                    "unknown)"
                )
            if env.get("container"):
                c = env["container"]
                lines.append(
                    f"  container {c['image']}" + (f"@{c['digest']}" if c.get("digest") else "")
                )
        tr = prov.get("training") or {}
        if tr.get("start"):
            lines.append(f"  trained   {tr['start']} → {tr.get('end', '?')}")
        if tr.get("seeds"):
            lines.append("  seeds     " + ", ".join(f"{k}={v}" for k, v in tr["seeds"].items()))
        for d in meta.get("data") or []:
            lines.append(
                f"  data      [{d.get('type')}] {d.get('did') or d.get('path') or d.get('doi') or d.get('uri') or d.get('name', '')}"
                + _data_status(d)
            )
        for p in meta.get("parents") or []:
            lines.append(
                f"  parent    {p.get('relation', '').replace('_', ' ')} {p.get('ref') or p}"
                + (f" (sha256:{p['manifestDigest'][:12]})" if p.get("manifestDigest") else "")
            )
    lines.extend(_fpga_lines(meta.get("fpga")))
    if meta.get("io"):
        lines.extend(io_lines(b.io))
    if meta.get("validity"):
        lines.extend(validity_lines(meta["validity"]))
    if card and meta.get("modelCard"):
        card_path = b.root / meta["modelCard"]
        if card_path.is_file():
            lines.append("")
            lines.append(render_markdown(b.path(meta["modelCard"]).read_text(encoding="utf-8")))
    return "\n".join(lines)


def validity_lines(section: Any) -> list[str]:
    """The ``validity`` block of show: one line per dimension of the scope
    (bundle-spec/validity.md); an unreadable section is said so, in one line."""
    try:
        rows = Scope.from_json(section).rows()
    except FormatError as e:
        return ["validity", f"  (unreadable: {e.message})"]
    return ["validity", *(f"  {dim:<10}{text}" for dim, text in rows)]


def catalog_summary(where: Located) -> dict[str, Any]:
    """What the catalogue says of the version ``where`` names (a release manager's questions:
    is it yanked, which aliases point at it, who signed it, when was it published)."""
    rec = where.record
    assert rec is not None
    catalog = where.catalog
    aliases: list[dict[str, Any]] = []
    if catalog is not None:
        for alias, version in sorted(catalog.aliases.items()):
            if version != rec.version:
                continue
            moves = [e for e in catalog.alias_history if e.alias == alias and e.version == version]
            last = moves[-1] if moves else None
            aliases.append(
                {"alias": alias, "since": last.time if last else None}
                | ({"actor": last.actor} if last and last.actor else {})
            )
        latest = catalog.latest()
        if latest is not None and latest.version == rec.version and "latest" not in catalog.aliases:
            aliases.append({"alias": "latest", "since": None})
    from ..policy import signer_name  # the policy layer (and cryptography) for show only

    names = _signer_names(where)
    return {
        "repository": str(where.repo),
        "published": rec.published,
        "aliases": aliases,
        "signers": list(rec.signers),
        "signer_names": {s: n for s in rec.signers if (n := signer_name(s, names))},
        "yanked": rec.yanked,
        "yanked_time": rec.yanked_time,
        "yanked_by": rec.yanked_by,
    }


def _signer_names(where: Located) -> dict[str, str]:
    """The names the repository's trust root gives signers' keys (none when the repository has
    no trust root this node accepts: a name is only as good as the policy that gives it)."""
    from ..repository.trust import trust_root_for

    if where.repo is None:
        return {}
    try:
        root = trust_root_for(Path(where.repo))
    except HepbundleError:
        return {}
    return root.policy.signer_names() if root is not None else {}


def catalog_lines(where: Located) -> list[str]:
    """The catalogue block of `show` (:func:`catalog_summary` as text); empty for a bundle
    directory, which no catalogue describes."""
    if where.record is None:
        return []
    c = catalog_summary(where)
    lines = []
    if c["yanked"] is not None:
        who = f" by {c['yanked_by']}" if c["yanked_by"] else ""
        lines.append(
            click.style(f"  YANKED: {c['yanked']}", fg="red", bold=True)
            + f" ({c['yanked_time']}{who}); do not use it, pin another version"
        )
    lines.append(f"  published {c['published']} in {c['repository']}")
    aliases = [_alias_text(a) for a in c["aliases"]]
    lines.append("  aliases   " + (", ".join(aliases) or "none point at this version"))
    signers = []
    for s in c["signers"]:
        what = f"key {s}" if s.startswith("sha256:") else s
        name = c["signer_names"].get(s)
        signers.append(f"{name} ({what})" if name else what)
    lines.append("  signers   " + (", ".join(signers) or "none recorded (published unsigned)"))
    return lines


def _alias_text(a: dict[str, Any]) -> str:
    if not a["since"]:
        return f"@{a['alias']}"
    who = f" by {a['actor']}" if a.get("actor") else ""
    return f"@{a['alias']} (since {a['since']}{who})"


def _data_status(d: Any) -> str:
    """How far a data reference was checked at build time, for the ``data`` line of show."""
    if not isinstance(d, dict):
        return ""
    if d.get("type") == "rucio":
        if not d.get("resolved"):
            return f" (not resolved by Rucio: {d.get('reason', 'no reason recorded')})"
        what = [str(d.get("didType") or "DID")]
        if d.get("didType") not in (None, "file"):
            what.append(f"{d.get('files', '?')} files")
        if d.get("bytes") is not None:
            what.append(f"{d['bytes']:,} bytes")
        if d.get("adler32"):
            what.append(f"adler32 {d['adler32']}")
        checked = [r.get("rse", "?") for r in d.get("replicas") or [] if r.get("checked")]
        if checked:
            what.append("replica checked on " + ", ".join(checked))
        return f" (resolved by Rucio: {', '.join(what)})"
    if d.get("type") == "file":
        if d.get("verified"):
            via = " by the XRootD server" if d.get("checksumSource") == "xrootd" else ""
            return f" (verified{via})"
        return f" (not verified: {d.get('reason', 'no reason recorded')})"
    return ""


def _fpga_lines(fpga: Any) -> list[str]:
    """The firmware summary: toolchain and backend, target, clock, model settings, synthesis."""
    if not isinstance(fpga, dict):
        return []
    tool = fpga.get("tool") or {}
    head = " ".join(
        str(x)
        for x in (
            fpga.get("toolchain"),
            tool.get("version"),
            fpga.get("backend"),
            fpga.get("ioType"),
        )
        if x
    )
    out = ["fpga", f"  firmware  {head} in {fpga.get('project', '?')}"]
    target = [f"part {fpga['part']}"] if fpga.get("part") else []
    if fpga.get("board"):
        target.append(f"board {fpga['board']}")
    clock = fpga.get("clock") or {}
    if clock.get("periodNs"):
        target.append(f"clock {clock['periodNs']} ns")
    if target:
        out.append("  target    " + ", ".join(target))
    model = fpga.get("model") or {}
    precision = (model.get("precision") or {}).get("default")
    if precision or model.get("strategy"):
        settings = [precision] if precision else []
        settings.append(
            f"reuse {model.get('reuseFactor', '?')}, strategy {model.get('strategy', '?')}"
        )
        out.append("  model     " + " ".join(settings))
    build = fpga.get("firmwareBuild") or {}
    if build.get("id"):
        out.append(f"  build id  {build['id'][:16]}… ({build.get('files', '?')} files)")
    return out


def io_lines(sig: IOSignature) -> list[str]:
    """The I/O signature as two tables: inputs (one row per feature: unit, normalisation,
    allowed range) and outputs (their classes)."""
    source = ", ".join(x for x in (sig.model, sig.framework) if x)
    out: list[str] = []
    for kind in ("input", "output"):
        rows = [r for r in sig.rows() if r["kind"] == kind]
        if not rows:
            continue
        cols = (
            ("tensor", "type", "index", "name", "unit", "normalisation", "range")
            if kind == "input"
            else ("tensor", "type", "name")
        )
        heads = {"index": "#", "name": "feature" if kind == "input" else "classes"}
        table = [[heads.get(c, c) for c in cols]]
        last = None
        for r in rows:
            first = r["tensor"] != last
            last = r["tensor"]
            table.append([r[c] if first or c not in ("tensor", "type") else "" for c in cols])
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        out.append(f"{kind}s" + (f" ({source})" if source and kind == "input" else ""))
        for row in table:
            out.append(
                "  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )
    return out


def _person(a: Any) -> str:
    if isinstance(a, dict):
        return str(a.get("name", "?")) + (f" <{a['email']}>" if a.get("email") else "")
    return str(a)


def render_markdown(text: str) -> str:
    """Minimal terminal rendering of Markdown: bold headings, tables and lists as written."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            out.append(
                click.style(line.lstrip("#").strip(), bold=True, underline=line.startswith("# "))
            )
        else:
            out.append(line)
    return "\n".join(out)

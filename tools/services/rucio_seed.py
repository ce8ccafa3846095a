"""Seed the test Rucio server (run by ``rucio.sh seed`` with the server venv's Python).

Creates the scopes the tests use, an RSE ``POSIX_LOCAL`` backed by a directory and, when an
XRootD server is given, an RSE ``XRD_LOCAL`` whose PFNs are ``root://`` URLs on it; gives the
root account unlimited quotas on both. Safe to run again: what exists is kept, a protocol whose
settings changed is replaced.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from urllib.parse import urlparse

from rucio.client import Client
from rucio.common.exception import Duplicate, RSEProtocolNotSupported

SCOPES = ("mc23_13p6TeV", "user.hepbundle")
ALL = {"read": 1, "write": 1, "delete": 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--posix-dir", required=True)
    ap.add_argument("--xrootd-url", default="")
    ap.add_argument("--xrootd-export", default="")
    args = ap.parse_args()
    client = Client()
    for scope in SCOPES:
        _ignore_duplicate(client.add_scope, "root", scope)
    os.makedirs(args.posix_dir, exist_ok=True)
    rses = {
        "POSIX_LOCAL": {
            "scheme": "file",
            "hostname": "localhost",
            "port": 0,
            "prefix": args.posix_dir.rstrip("/") + "/",
            "impl": "rucio.rse.protocols.posix.Default",
            "domains": {"lan": ALL, "wan": ALL},
        }
    }
    if args.xrootd_url:
        url = urlparse(args.xrootd_url)
        # root://host:port//abs/path: an absolute path needs the prefix's leading double slash
        rses["XRD_LOCAL"] = {
            "scheme": "root",
            "hostname": url.hostname,
            "port": url.port or 1094,
            "prefix": "/" + args.xrootd_export.rstrip("/") + "/rucio/",
            "impl": "rucio.rse.protocols.xrootd.Default",
            "domains": {"lan": ALL, "wan": ALL},
        }
    for rse, protocol in rses.items():
        _ignore_duplicate(client.add_rse, rse)
        _set_protocol(client, rse, protocol)
        client.set_local_account_limit("root", rse, -1)  # -1: no quota
    print("scopes:", ", ".join(sorted(client.list_scopes())))
    print("RSEs:", ", ".join(sorted(r["rse"] for r in client.list_rses())))


def _ignore_duplicate(fn, *args):  # type: ignore[no-untyped-def]
    with contextlib.suppress(Duplicate):
        fn(*args)


def _set_protocol(client: Client, rse: str, protocol: dict) -> None:  # type: ignore[type-arg]
    try:
        existing = client.get_protocols(rse)
    except RSEProtocolNotSupported:
        existing = []
    keys = ("hostname", "port", "prefix", "impl")
    for p in existing:
        if p["scheme"] != protocol["scheme"]:
            continue
        if all(p.get(k) == protocol[k] for k in keys):
            return
        client.delete_protocols(rse, protocol["scheme"])
    client.add_protocol(rse, protocol)


if __name__ == "__main__":
    main()

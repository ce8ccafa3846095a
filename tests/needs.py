"""What a test does when a tool or service it drives is absent.

A test that needs a real component (a browser, a server, a console script, a kernel feature)
calls :func:`missing` when the component is not there. On a developer's machine that is a skip
with the reason; in CI, which exports ``HEPBUNDLE_REQUIRE_SERVICES=1`` (see ``.ci/run``), it is a
failure, so a component that silently stopped installing cannot turn a green run into a hollow
one.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "HEPBUNDLE_REQUIRE_SERVICES"


def required() -> bool:
    """True where every component the suite drives must be present (CI)."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def missing(reason: str) -> NoReturn:
    """Skip with ``reason`` on a developer's machine; fail in CI."""
    if required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: this component must be present)", pytrace=False)
    pytest.skip(reason)

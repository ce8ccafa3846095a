"""mkdocs hook: a link to a file the site excludes is an error, not a note.

mkdocs reports such a link (``… contains a link to 'x' which is excluded from the built site``)
at INFO level whatever ``validation:`` says, so ``--strict`` lets it through and the site ships
a dead link. This hook raises that one message to WARNING, which ``--strict`` counts.
"""

from __future__ import annotations

import logging
from typing import Any

_EXCLUDED = "which is excluded from the built site"


class _RaiseExcludedLinks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and _EXCLUDED in record.getMessage():
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_FILTER = _RaiseExcludedLinks()


def on_config(config: Any) -> Any:
    logger = logging.getLogger("mkdocs.structure.pages")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return config

"""Logging: one line per event on stdout, which journald captures under systemd."""

from __future__ import annotations

import logging
import sys

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _OneLine(logging.Formatter):
    """Keep multi-line messages and tracebacks on one line so each event is one record."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_OneLine("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    # Library chatter stays at warning; our own loggers follow the configured level.
    for noisy in ("aiohttp.access", "asyncio", "redis"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

"""Logging setup: logs and progress go to stderr, results to stdout."""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "llm_platform"


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(LOGGER_NAME if name is None else f"{LOGGER_NAME}.{name}")


class _StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record is emitted, not as it was when the handler was made: a
    program that runs the CLI in-process (the tests, an embedding tool) may have swapped it since."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def configure(verbose: bool = False) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "_llm_platform", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._llm_platform = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False

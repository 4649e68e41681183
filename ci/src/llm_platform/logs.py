"""Logging setup: logs and progress go to stderr, results to stdout."""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "llm_platform"


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(LOGGER_NAME if name is None else f"{LOGGER_NAME}.{name}")


def configure(verbose: bool = False) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "_llm_platform", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._llm_platform = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False

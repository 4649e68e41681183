"""httpx, imported without its command-line client.

httpx's `__init__` imports `httpx._main` (click, rich and pygments: ~55 ms, a fifth of a warm
`modelcar publish`) whenever those are installed, and typer installs them; nothing here uses httpx's CLI.
Marking that one submodule as absent during the import sends httpx down its own `except ImportError`
branch, which defines a stub `main`. Import httpx from here, never directly.
"""

from __future__ import annotations

import sys

if "httpx" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]  # None in sys.modules: ImportError on import
    try:
        import httpx
    finally:
        if "httpx._main" in sys.modules and sys.modules["httpx._main"] is None:
            del sys.modules["httpx._main"]

import httpx as httpx  # noqa: PLC0414 - the re-export is this module's purpose

__all__ = ["httpx"]

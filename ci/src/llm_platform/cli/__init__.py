"""The `llm-platform` command: a thin front door over the core; no pipeline logic lives here.

`main` imports only what it needs to hand over to the typer app in `commands.py`; each command imports its
core on use, so `llm-platform` starts without httpx, pydantic or the publish stack.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected failures become one line on stderr and a non-zero exit code."""
    from llm_platform.cli.commands import run

    return run(list(sys.argv[1:] if argv is None else argv))


def __getattr__(name: str) -> object:  # PEP 562: `from llm_platform.cli import app` still works, lazily
    if name == "app":
        from llm_platform.cli.commands import app

        return app
    raise AttributeError(name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

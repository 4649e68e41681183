"""The `llm-platform` command: a thin front door over the core; no pipeline logic lives here.

`main` is kept light on purpose: a re-publish whose receipt still holds (llm_platform.modelcar.receipt)
answers before typer, pydantic or httpx are imported; everything else goes to the typer app in `commands.py`.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected failures become one line on stderr and a non-zero exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["modelcar", "publish"]:
        from llm_platform.modelcar.receipt import republish

        try:
            reference = republish(args[2:], cwd=os.getcwd(), environ=os.environ)
        except Exception:  # noqa: BLE001 - a shortcut that fails in any way just means: take the full publish
            reference = None
        if reference is not None:
            print(reference, flush=True)
            return 0
    from llm_platform.cli.commands import run

    return run(args)


def __getattr__(name: str) -> object:  # PEP 562: `from llm_platform.cli import app` still works, lazily
    if name == "app":
        from llm_platform.cli.commands import app

        return app
    raise AttributeError(name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

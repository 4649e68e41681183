"""The `llm-platform` command: a thin front door over the core; no pipeline logic lives here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llm_platform import logs
from llm_platform.errors import PlatformError

app = typer.Typer(
    name="llm-platform",
    help="Delivery pipeline of the LLM-serving platform: modelcars, tofu, GitOps lint and digest bumps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging on stderr.")] = False,
) -> None:
    logs.configure(verbose)


# Sub-command groups: one module each, registered here.
# (each line: `from llm_platform.cli import X as _X` + `app.add_typer(_X.app, name=...)` or `_X.register(app)`)
from llm_platform.cli import lint as _lint  # noqa: E402
_lint.register(app)
from llm_platform.cli import crds as _crds  # noqa: E402
app.add_typer(_crds.app, name="crds")
from llm_platform.cli import bump as _bump  # noqa: E402
_bump.register(app)
from llm_platform.cli import modelcar as _modelcar  # noqa: E402
app.add_typer(_modelcar.app, name="modelcar")
from llm_platform.cli import modelcar_publish as _modelcar_publish  # noqa: E402,F401  (adds `modelcar publish`)
from llm_platform.cli import tofu as _tofu  # noqa: E402
app.add_typer(_tofu.app, name="tofu")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected failures become one line on stderr and a non-zero exit code."""
    command = typer.main.get_command(app)
    try:
        # standalone mode: usage errors print the usage line and exit 2, whatever click typer ships
        command.main(args=argv, prog_name="llm-platform", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except PlatformError as exc:
        print(f"llm-platform: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

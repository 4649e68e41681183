"""The typer application behind `llm-platform` (entry point: `llm_platform.cli.main`)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llm_platform import logs
from llm_platform.cli import bump, crds, lint, modelcar, modelcar_publish, tofu  # noqa: F401 (publish registers itself)
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


# Sub-command groups: one module each. `modelcar_publish` adds `publish` to the modelcar group.
app.add_typer(modelcar.app, name="modelcar")
app.add_typer(tofu.app, name="tofu")
app.add_typer(crds.app, name="crds")
lint.register(app)
bump.register(app)


def run(args: list[str]) -> int:
    """Run the CLI; expected failures become one line on stderr and a non-zero exit code."""
    command = typer.main.get_command(app)
    try:
        # standalone mode: usage errors print the usage line and exit 2, whatever click typer ships.
        command.main(args=args, prog_name="llm-platform", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except PlatformError as exc:
        print(f"llm-platform: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0

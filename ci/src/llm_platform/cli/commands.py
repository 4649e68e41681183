"""The typer application behind `llm-platform` (entry point: `llm_platform.cli.main`)."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from llm_platform import logs
from llm_platform.cli import (  # noqa: F401 (publish, sign and verify register themselves)
    bump,
    charts,
    cluster,
    configure,
    crds,
    lint,
    modelcar,
    modelcar_publish,
    modelcar_sign,
    tofu,
)
from llm_platform.errors import (
    SERVICE_ERROR,
    USER_ERROR,
    PlatformError,
    describe_os_error,
    exit_code_for_os_error,
    one_line,
)

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
app.add_typer(charts.app, name="charts")
app.add_typer(cluster.app, name="cluster")
lint.register(app)
bump.register(app)
configure.register(app)


def run(args: list[str]) -> int:
    """Run the CLI under the error contract (`llm_platform.errors`): results on stdout; every failure one
    line `llm-platform: error: <where>: <what>` on stderr, exit 2 for the user's (input, usage,
    filesystem, permission, configuration), 1 for a tool or a service, 3 for a conflict; a traceback only
    with -v."""
    command = typer.main.get_command(app)
    verbose = bool({"-v", "--verbose"} & set(args[: args.index("--")] if "--" in args else args))
    try:
        # Not standalone: usage errors come back here, to be told in one line like every other error.
        result = command.main(args=args, prog_name="llm-platform", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return _fail("interrupted", 130, verbose)
    except PlatformError as exc:
        return _fail(str(exc), exc.exit_code, verbose)
    except OSError as exc:
        return _fail(describe_os_error(exc), exit_code_for_os_error(exc), verbose)
    except Exception as exc:  # noqa: BLE001 - the contract: one line for anything, the traceback with -v
        if _is_a(exc, "NoArgsIsHelpError"):
            exc.show()  # type: ignore[attr-defined]  # `llm-platform` or a group alone: its help
            return USER_ERROR
        if _is_a(exc, "UsageError"):
            ctx = getattr(exc, "ctx", None)
            path = ctx.command_path if ctx is not None else "llm-platform"
            where = path.removeprefix("llm-platform").strip() or "usage"
            message = exc.format_message()  # type: ignore[attr-defined]
            return _fail(f"{where}: {message} (see {path} --help)", USER_ERROR, verbose)
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback; please report it)",
            SERVICE_ERROR,
            verbose,
        )
    return result if isinstance(result, int) else 0


def _is_a(exc: Exception, class_name: str) -> bool:
    """Click's exception classes by name: typer ships click, or a copy of it, depending on its version."""
    return any(cls.__name__ == class_name for cls in type(exc).__mro__)


def _fail(message: str, code: int, verbose: bool) -> int:
    if verbose:
        traceback.print_exc(file=sys.stderr)
    print(f"llm-platform: error: {one_line(message)}", file=sys.stderr)
    return code

"""`llm-platform tofu ...`: plan, apply and read outputs of an OpenTofu root. Logic lives in llm_platform.tofu."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from llm_platform import tofu

# llm_platform.tofu is imported inside the commands: every `llm-platform` start would otherwise build its
# pydantic models, whatever the command.

app = typer.Typer(
    help=(
        "Provision the substrate with OpenTofu (`tofu`, else `terraform`): plan to a file, apply exactly that "
        "plan (refusing to destroy protected resources), and read the root's outputs as typed JSON."
    ),
    no_args_is_help=True,
)

RootArg = Annotated[
    Path,
    typer.Argument(
        metavar="ENV_DIR", help="OpenTofu root directory, e.g. infra/envs/dev.", show_default=False
    ),
]
VarFiles = Annotated[
    list[Path] | None, typer.Option("--var-file", help="A .tfvars file (repeatable).", show_default=False)
]
BackendConfig = Annotated[
    list[str] | None,
    typer.Option(
        "--backend-config",
        help="Backend setting KEY=VALUE or a backend config file (repeatable), applied after the root's own "
        "backend.hcl (always used when present). Credentials are refused here: pass them in the environment.",
        show_default=False,
    ),
]
Binary = Annotated[
    str | None, typer.Option("--binary", help="tofu/terraform name or path (default: tofu, else terraform).")
]
PluginDir = Annotated[
    Path | None,
    typer.Option("--plugin-dir", help="Install providers only from this directory (air-gapped runners)."),
]
LockTimeout = Annotated[str, typer.Option("--lock-timeout", help="How long to wait for a held state lock.")]


def _options(
    var_file: list[Path] | None,
    backend_config: list[str] | None,
    binary: str | None,
    plugin_dir: Path | None,
    lock_timeout: str,
) -> tofu.TofuOptions:
    from llm_platform import tofu

    return tofu.TofuOptions(
        binary=binary,
        var_files=var_file or [],
        backend_config=backend_config or [],
        plugin_dir=plugin_dir,
        lock_timeout=lock_timeout,
    )


@app.command("plan")
def plan_command(
    root: RootArg,
    var_file: VarFiles = None,
    backend_config: BackendConfig = None,
    binary: Binary = None,
    plugin_dir: PluginDir = None,
    lock_timeout: LockTimeout = "0s",
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan here, for `apply --plan-file` later.")
    ] = None,
) -> None:
    """Init and plan; print the summary (adds, changes, replaces, destroys, protected destroys) as JSON."""
    from llm_platform import tofu

    result = tofu.plan(root, _options(var_file, backend_config, binary, plugin_dir, lock_timeout), out=out)
    typer.echo(result.model_dump_json(indent=2))


@app.command("apply")
def apply_command(
    root: RootArg,
    var_file: VarFiles = None,
    backend_config: BackendConfig = None,
    binary: Binary = None,
    plugin_dir: PluginDir = None,
    lock_timeout: LockTimeout = "0s",
    allow_destroy: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-destroy",
            help="Address of a protected resource this apply may destroy or replace (repeatable; `*` allowed).",
            show_default=False,
        ),
    ] = None,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan-file", help="Apply exactly this saved plan (from `plan --out`) instead of a fresh one."
        ),
    ] = None,
) -> None:
    """Plan to a file and apply exactly that plan; a no-op plan applies nothing. Prints the result as JSON."""
    from llm_platform import tofu

    result = tofu.apply(
        root,
        _options(var_file, backend_config, binary, plugin_dir, lock_timeout),
        allow_destroy=allow_destroy or [],
        plan_file=plan_file,
    )
    typer.echo(result.model_dump_json(indent=2))


@app.command("output")
def output_command(
    root: RootArg,
    backend_config: BackendConfig = None,
    binary: Binary = None,
    plugin_dir: PluginDir = None,
    lock_timeout: LockTimeout = "0s",
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", help="Print every output as name -> value, without the platform contract check."
        ),
    ] = False,
    show_sensitive: Annotated[
        bool,
        typer.Option("--show-sensitive", help="With --raw: print sensitive values instead of a placeholder."),
    ] = False,
) -> None:
    """Read the root's outputs, check them against the platform contract (PlatformOutputs), print JSON."""
    from llm_platform import tofu

    options = _options(None, backend_config, binary, plugin_dir, lock_timeout)
    if raw:
        typer.echo(json.dumps(tofu.raw_outputs(root, options, reveal_sensitive=show_sensitive), indent=2))
        return
    typer.echo(tofu.outputs(root, options).model_dump_json(indent=2))

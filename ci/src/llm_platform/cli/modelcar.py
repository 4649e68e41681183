"""`llm-platform modelcar ...`: build modelcar images, list the specs to publish, show the spec schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from llm_platform.modelcar.prepare import SourceOptions

# What --timeout does, for `build` and `publish` (the bounds are defined in llm_platform.network).
TIMEOUT_HELP = (
    "Give up on a registry or the Hugging Face Hub that sends or accepts nothing for this many seconds "
    "(default: $LLM_PLATFORM_HTTP_TIMEOUT, else 60). Small requests wait at most 20 s, a Retry-After at most "
    "60 s, and one request's stalls and waits between retries at most 1.5 times this."
)

app = typer.Typer(
    name="modelcar",
    help="Modelcars: OCI images carrying a model's weights under /models (KServe oci://).",
    no_args_is_help=True,
)


def source_options(
    spec: Path,
    *,
    source_dir: Path | None,
    base: str | None,
    platform: str,
    hf_token: str | None,
    cache_dir: Path | None,
    no_cache: bool,
    timeout: float | None = None,
    max_layers: int | None = None,
) -> SourceOptions:
    """The options `build` and `publish` share; the digest cache is on unless --no-cache."""
    from pydantic import SecretStr

    from llm_platform.modelcar.digest_cache import default_cache_dir
    from llm_platform.modelcar.prepare import SourceOptions

    return SourceOptions(
        spec=spec,
        source_dir=source_dir,
        base=base,
        platform=platform,
        hf_token=SecretStr(hf_token) if hf_token else None,
        cache_dir=None if no_cache else cache_dir or default_cache_dir(),
        timeout=timeout,
        max_layers=max_layers,
    )


# The options `build` and `publish` share, declared once.
SpecArg = Annotated[Path, typer.Argument(help="Modelcar spec, e.g. modelcars/minilm-demo.yaml.")]
SourceDirOption = Annotated[
    Path | None,
    typer.Option("--source-dir", help="Take the model files from this directory instead of Hugging Face."),
]
BaseOption = Annotated[
    str | None,
    typer.Option(
        "--base", help="Base image overriding the spec's: a digest-pinned reference or oci:DIR\\[:TAG]."
    ),
]
PlatformOption = Annotated[
    str, typer.Option("--platform", help="Platform picked from a multi-platform base (os/arch\\[/variant]).")
]
HfTokenOption = Annotated[
    str | None,
    typer.Option(
        "--hf-token", help="Hugging Face token (default: $HF_TOKEN); never logged.", show_default=False
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", min=0.1, metavar="SECONDS", help=TIMEOUT_HELP, show_default=False),
]
MaxLayersOption = Annotated[
    int | None,
    typer.Option(
        "--max-layers",
        metavar="N",
        help="Most layers the image may have, the base image's included (default: the spec's image.max_layers, "
        "else 127; container runtimes cap it at 128 or about 500). Above it the smallest model files share "
        "layers.",
        show_default=False,
    ),
]


@app.command("build")
def build(
    spec: SpecArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write the OCI image layout to.")
    ],
    source_dir: SourceDirOption = None,
    base: BaseOption = None,
    platform: PlatformOption = "linux/amd64",
    hf_token: HfTokenOption = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Digest cache to record local files' digests in, for a later publish "
            "(default: $LLM_PLATFORM_CACHE_DIR, else $XDG_CACHE_HOME/llm-platform).",
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not record digests.")] = False,
    timeout: TimeoutOption = None,
    max_layers: MaxLayersOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the build result as JSON instead.")] = False,
) -> None:
    """Build the modelcar image of SPEC as an OCI layout; print its digest-pinned reference.

    The digests learnt from local files go to the digest cache: a publish of the same files then streams
    them without hashing them again.
    """
    from llm_platform.modelcar.build import build_layout  # core imported on use: the CLI starts fast

    result = build_layout(
        source_options(
            spec,
            source_dir=source_dir,
            base=base,
            platform=platform,
            hf_token=hf_token,
            cache_dir=cache_dir,
            no_cache=no_cache,
            timeout=timeout,
            max_layers=max_layers,
        ),
        output=output,
    )
    typer.echo(result.model_dump_json(indent=2) if as_json else result.reference)


CHANGED_HELP = (
    "List the specs whose image needs publishing (no lock, or a stale one), as JSON.\n\n"
    'Prints {"changed": [...], "unchanged": [...]}: a spec is changed when modelcars/NAME.lock.json is '
    "missing or records another spec_sha256 than the spec has now; comments and formatting of a spec don't "
    "count. A bad spec or lock fails (exit 2) naming its file, line and field. `dagger call deploy` runs this "
    "to pick the modelcars it publishes.\n\n"
    "Example: llm-platform modelcar changed --modelcars modelcars"
)


@app.command("changed", help=CHANGED_HELP)
def changed(
    modelcars: Annotated[
        Path, typer.Option("--modelcars", help="Directory of specs (NAME.yaml) and locks (NAME.lock.json).")
    ] = Path("modelcars"),
) -> None:
    from llm_platform.modelcar.lock import stale_specs

    typer.echo(stale_specs(modelcars).model_dump_json(indent=2))


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of modelcar specs (published as modelcars/modelcar.schema.json)."""
    from llm_platform.modelcar.spec import spec_json_schema

    typer.echo(json.dumps(spec_json_schema(), indent=2, sort_keys=True))

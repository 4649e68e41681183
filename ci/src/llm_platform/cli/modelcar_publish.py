"""`llm-platform modelcar publish`: a thin front door over `llm_platform.modelcar.publish`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llm_platform.cli.modelcar import app as modelcar_app
from llm_platform.errors import InputError
from llm_platform.registry import PASSWORD_ENV, USERNAME_ENV, MiB, UploadMode

if TYPE_CHECKING:
    from llm_platform.modelcar.publish import PublishResult

# The core (llm_platform.modelcar.publish) is imported inside the command: every `llm-platform` start
# would otherwise pay for httpx and the whole publish stack, whatever the command.


def publish(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Modelcar spec, e.g. modelcars/minilm-demo.yaml.")],
    to: Annotated[
        str,
        typer.Option("--to", help="Target REGISTRY/REPOSITORY[:TAG]. Without a tag, the image is tagged "
                                  "<spec name>-<first 12 of the HF commit sha>."),
    ],
    source_dir: Annotated[
        Path | None,
        typer.Option("--source-dir", help="Take the model files from this directory instead of Hugging Face."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option("--base", help="Base image overriding the spec's: a digest-pinned reference or oci:DIR[:TAG]."),
    ] = None,
    platform: Annotated[str, typer.Option("--platform", help="Platform of the image: os/arch or os/arch/variant, e.g. linux/amd64.")] = (
        "linux/amd64"
    ),
    insecure_registry: Annotated[
        list[str] | None,
        typer.Option("--insecure-registry", help="Speak plain HTTP to this registry host (repeatable). "
                                                 "localhost and 127.0.0.1 always use HTTP."),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help=f"Registry user (default: ${USERNAME_ENV}, then auth files).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help=f"Read the registry password from stdin (or set ${PASSWORD_ENV}).")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Blobs pushed at once.")] = 4,
    mount_from: Annotated[
        list[str] | None,
        typer.Option("--mount-from", help="Another repository of the same registry to mount existing blobs from "
                                          "(REGISTRY/REPOSITORY, repeatable)."),
    ] = None,
    upload_mode: Annotated[
        UploadMode | None,
        typer.Option("--upload-mode", help="Override the registry's upload mode (default: monolithic for GHCR, "
                                           "Artifact Registry/GCR and ECR, chunked elsewhere)."),
    ] = None,
    chunk_size_mib: Annotated[int | None, typer.Option("--chunk-size-mib", min=1, help="Chunk size (MiB).")] = None,
    max_layer_size_mib: Annotated[
        int | None, typer.Option("--max-layer-size-mib", min=1, help="Refuse layers larger than this (MiB).")
    ] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Retries of a failed request or upload.")] = 4,
    hf_token: Annotated[
        str | None,
        typer.Option("--hf-token", help="Hugging Face token (default: $HF_TOKEN); never logged.", show_default=False),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Digest cache of local files (default: $LLM_PLATFORM_CACHE_DIR, "
                                         "else $XDG_CACHE_HOME/llm-platform)."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the digest cache.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the publish result as JSON instead.")] = False,
) -> None:
    """Build the modelcar of SPEC and push it; print its verified REGISTRY/REPOSITORY@sha256:... reference.

    Blobs the registry already has are skipped; files unchanged since the previous image of the spec are
    neither downloaded nor uploaded (local files are not even read when the digest cache knows them);
    layers stream straight from the model files. Progress goes to stderr; a push that failed or could
    not be verified prints nothing on stdout and exits non-zero.
    """
    from llm_platform.modelcar.publish import publish_modelcar

    # Receipts are keyed on the raw arguments, exactly as `llm_platform.cli.main` sees them before typer.
    args: list[str] = ctx.obj.get("args", []) if isinstance(ctx.obj, dict) else []
    receipt = None
    if args[:2] == ["modelcar", "publish"] and not (as_json or no_cache):
        receipt = _ReceiptWriter(args[2:], spec, source_dir, base)
    password: str | None = None
    if password_stdin:
        if not username:
            raise InputError("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InputError("--password-stdin: no password on stdin")
    elif username:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            raise InputError(f"--username {username}: give the password with --password-stdin or ${PASSWORD_ENV}")
    result = publish_modelcar(
        spec,
        to,
        source_dir=source_dir,
        base=base,
        platform=platform,
        hf_token=hf_token,
        insecure_registries=insecure_registry or [],
        username=username,
        password=password,
        concurrency=concurrency,
        mount_from=mount_from or [],
        upload_mode=upload_mode,
        chunk_size=chunk_size_mib * MiB if chunk_size_mib else None,
        max_layer_size=max_layer_size_mib * MiB if max_layer_size_mib else None,
        retries=retries,
        cache_dir=cache_dir,
        use_cache=not no_cache,
    )
    if receipt is not None:
        receipt.record(result, to, insecure_registry or [])
    typer.echo(result.model_dump_json(indent=2) if as_json else result.reference)


class _ReceiptWriter:
    """Snapshots the inputs before the publish reads them, and records a receipt after a verified publish
    (llm_platform.modelcar.receipt): the same command then answers without re-planning the image."""

    def __init__(self, args: list[str], spec: Path, source_dir: Path | None, base: str | None) -> None:
        from llm_platform.modelcar import receipt
        from llm_platform.modelcar.base_image import split_layout_reference
        from llm_platform.modelcar.spec import load_spec

        self.args = args
        self.started_ns = time.time_ns()
        self.before: dict[str, list[int] | None] | None = None
        loaded = load_spec(spec)  # a bad spec fails here with the message the publish would give
        if source_dir is None and not loaded.huggingface.pins_commit:
            return  # a branch or tag may move: the next publish must ask the hub
        base_ref = base or loaded.image.base
        layout = str(split_layout_reference(base_ref)[0]) if base_ref.startswith("oci:") else None
        try:
            self.before = receipt.snapshot(
                receipt.input_paths(str(spec), str(source_dir) if source_dir else None, layout)
            )
        except OSError:  # the publish itself reports unreadable inputs
            self.before = None

    def record(self, result: PublishResult, to: str, insecure: list[str]) -> None:
        from llm_platform.modelcar import receipt
        from llm_platform.registry.client import scheme_for
        from llm_platform.registry.reference import parse_reference

        if self.before is None:
            return
        ref = parse_reference(to, what="--to")
        try:
            receipt.write(
                self.args, cwd=os.getcwd(), environ=os.environ, before=self.before, started_ns=self.started_ns,
                scheme=scheme_for(ref, insecure), host=ref.api_host, repository=ref.repository,
                digest=result.digest, tags=result.tags, reference=result.reference,
            )
        except OSError:  # the image is published and verified: a receipt that cannot be written changes nothing
            pass


modelcar_app.command("publish")(publish)

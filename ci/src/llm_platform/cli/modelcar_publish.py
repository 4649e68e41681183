"""`llm-platform modelcar publish`: a thin front door over `llm_platform.modelcar.publish`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from llm_platform.cli.modelcar import (
    BaseOption,
    HfTokenOption,
    MaxLayersOption,
    PlatformOption,
    SourceDirOption,
    SpecArg,
    TimeoutOption,
    source_options,
)
from llm_platform.cli.modelcar import app as modelcar_app
from llm_platform.cli.modelcar_sign import TrustConfigOption
from llm_platform.errors import InputError, PlatformError
from llm_platform.registry import PASSWORD_ENV, USERNAME_ENV, MiB, UploadMode
from llm_platform.signing import SIGNING_KEY_ENV, SIGNING_KEY_PASSWORD_ENV

# The core (llm_platform.modelcar.publish) is imported inside the command: every `llm-platform` start
# would otherwise pay for httpx and the whole publish stack, whatever the command.


def publish(
    spec: SpecArg,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Target REGISTRY/REPOSITORY[:TAG]. Without a tag, the image is tagged "
            "<spec name>-<first 12 of the HF commit sha>.",
        ),
    ],
    source_dir: SourceDirOption = None,
    base: BaseOption = None,
    platform: PlatformOption = "linux/amd64",
    insecure_registry: Annotated[
        list[str] | None,
        typer.Option(
            "--insecure-registry",
            help="Speak plain HTTP to this registry host (repeatable). "
            "localhost and 127.0.0.1 always use HTTP.",
        ),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option("--username", help=f"Registry user (default: ${USERNAME_ENV}, then auth files)."),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help=f"Read the registry password from stdin (or set ${PASSWORD_ENV})."
        ),
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Blobs pushed at once.")
    ] = 4,
    mount_from: Annotated[
        list[str] | None,
        typer.Option(
            "--mount-from",
            help="Another repository of the same registry to mount existing blobs from "
            "(REGISTRY/REPOSITORY, repeatable).",
        ),
    ] = None,
    upload_mode: Annotated[
        UploadMode | None,
        typer.Option(
            "--upload-mode",
            help="Override the registry's upload mode (default: monolithic for GHCR, "
            "Artifact Registry/GCR and ECR, chunked elsewhere).",
        ),
    ] = None,
    chunk_size_mib: Annotated[
        int | None, typer.Option("--chunk-size-mib", min=1, help="Chunk size (MiB).")
    ] = None,
    max_layer_size_mib: Annotated[
        int | None, typer.Option("--max-layer-size-mib", min=1, help="Refuse layers larger than this (MiB).")
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Retries of a failed request or upload.")
    ] = 4,
    timeout: TimeoutOption = None,
    max_layers: MaxLayersOption = None,
    hf_token: HfTokenOption = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Digest cache of local files (default: $LLM_PLATFORM_CACHE_DIR, "
            "else $XDG_CACHE_HOME/llm-platform).",
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the digest cache.")
    ] = False,
    spool_dir: Annotated[
        Path | None,
        typer.Option(
            "--spool-dir",
            help="For a registry without chunked uploads: keep a hub layer of unknown digest here while it "
            "uploads (read from the hub once, one layer per upload on disk) instead of reading it twice.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the publish result as JSON instead.")
    ] = False,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key",
            help=f"Sign the pushed image and attach its attestations (`modelcar sign`) with this PEM private "
            f"key; ${SIGNING_KEY_ENV} (the PEM text) signs too. Password: ${SIGNING_KEY_PASSWORD_ENV}.",
        ),
    ] = None,
    keyless: Annotated[
        bool,
        typer.Option(
            "--keyless",
            help="Sign the pushed image keyless (`modelcar sign --keyless`): a Fulcio certificate for "
            "$SIGSTORE_ID_TOKEN or the CI's ambient OIDC token, a Rekor entry per signature.",
        ),
    ] = False,
    sigstore_trust_config: TrustConfigOption = None,
) -> None:
    """Build the modelcar of SPEC and push it; print its verified REGISTRY/REPOSITORY@sha256:... reference.

    Blobs the registry already has are skipped; files unchanged since the previous image of the spec are
    neither downloaded nor uploaded (local files are not even read when the digest cache knows them);
    layers stream straight from the model files. Progress goes to stderr; a push that failed or could
    not be verified prints nothing on stdout and exits non-zero.
    """
    from pydantic import SecretStr

    from llm_platform.modelcar.publish import PushOptions, publish_modelcar

    signing_key = None
    if keyless or sign_key is not None or os.environ.get(SIGNING_KEY_ENV) or sigstore_trust_config:
        from llm_platform.cli.modelcar_sign import load_signer

        # A bad key or password, or no identity token or an unreachable Fulcio, fails before anything is pushed.
        signing_key = load_signer(sign_key, keyless, sigstore_trust_config, timeout)
    password: SecretStr | None = None
    if password_stdin:
        password = SecretStr(sys.stdin.readline().rstrip("\r\n"))
        if not password.get_secret_value():
            raise InputError("--password-stdin: no password on stdin")
    result = publish_modelcar(
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
        PushOptions(
            target=to,
            insecure_registries=insecure_registry or [],
            username=username,
            password=password,
            concurrency=concurrency,
            mount_from=mount_from or [],
            upload_mode=upload_mode,
            chunk_size=chunk_size_mib * MiB if chunk_size_mib else None,
            max_layer_size=max_layer_size_mib * MiB if max_layer_size_mib else None,
            retries=retries,
            timeout=timeout,
            spool_dir=spool_dir,
        ),
    )
    if signing_key is None:
        typer.echo(result.model_dump_json(indent=2) if as_json else result.reference)
        return
    from llm_platform.cli.modelcar_sign import registry_client
    from llm_platform.modelcar.spec import load_spec
    from llm_platform.registry.reference import parse_reference
    from llm_platform.signing.sign import sign_image

    image = parse_reference(result.reference, what="--to")
    secret = password.get_secret_value() if password is not None else None
    try:
        with registry_client(image, insecure_registry, username, secret, timeout) as client:
            signed = sign_image(client, image, signing_key, load_spec(spec))
    except PlatformError as exc:
        raise PlatformError(f"{result.reference} was pushed but not signed: {exc}") from None
    if as_json:
        typer.echo(
            json.dumps({**result.model_dump(mode="json"), "signed": signed.model_dump(mode="json")}, indent=2)
        )
    else:
        typer.echo(result.reference)


modelcar_app.command("publish")(publish)

"""`llm-platform crds sync`: fetch the CRDs pinned in gitops/crds.lock.yaml into a local cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from llm_platform.logs import get_logger

log = get_logger("crds")

# Literal here (also defined as llm_platform.lint.crds_lock.CRDS_MIRROR_ENV) so `--help` needs no core import.
_MIRROR_ENV = "LLM_PLATFORM_CRDS_MIRROR"

app = typer.Typer(help="Upstream CRD manifests used by `llm-platform lint --crds`.", no_args_is_help=True)


@app.command("sync")
def sync(
    lock: Annotated[Path, typer.Option("--lock", help="Lock file of CRD URLs and sha256.")] = Path(
        "gitops/crds.lock.yaml"
    ),
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Cache directory (default ~/.cache/llm-platform/crds).")
    ] = None,
    mirror: Annotated[
        Path | None,
        typer.Option(
            "--mirror",
            envvar=_MIRROR_ENV,
            show_envvar=True,
            help="Take each locked file from DIR/<file> (a directory laid out like the cache: "
            "<project>/<tag>/<file>) instead of its upstream URL; verified against the lock the same way.",
            metavar="DIR",
        ),
    ] = None,
) -> None:
    """Fetch every locked CRD file not yet cached, from upstream or a mirror, verifying its sha256; a
    missing or mismatching file is refused.

    Prints the cache directory on stdout, so `llm-platform lint --crds "$(llm-platform crds sync)"` works.
    """
    from llm_platform.lint.crds_lock import default_crd_cache, load_lock, sync_crds

    target = cache or default_crd_cache()
    fetched, cached = sync_crds(load_lock(lock), target, mirror=mirror)
    log.info(
        "crds: %d fetched from %s, %d already cached and verified", fetched, mirror or "upstream", cached
    )
    sys.stdout.write(f"{target}\n")

"""`llm-platform crds sync`: fetch the CRDs pinned in gitops/crds.lock.yaml into a local cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from llm_platform.logs import get_logger

log = get_logger("crds")

app = typer.Typer(help="Upstream CRD manifests used by `llm-platform lint --crds`.", no_args_is_help=True)


@app.command("sync")
def sync(
    lock: Annotated[Path, typer.Option("--lock", help="Lock file of CRD URLs and sha256.")] = Path(
        "gitops/crds.lock.yaml"),
    cache: Annotated[Path | None, typer.Option("--cache", help="Cache directory (default "
                                                               "~/.cache/llm-platform/crds).")] = None,
) -> None:
    """Download every locked CRD file not yet cached, verifying its sha256; a mismatch is refused.

    Prints the cache directory on stdout, so `llm-platform lint --crds "$(llm-platform crds sync)"` works.
    """
    from llm_platform.lint.crds_lock import default_crd_cache, load_lock, sync_crds

    target = cache or default_crd_cache()
    downloaded, cached = sync_crds(load_lock(lock), target)
    log.info("crds: %d downloaded, %d already cached and verified", downloaded, cached)
    sys.stdout.write(f"{target}\n")

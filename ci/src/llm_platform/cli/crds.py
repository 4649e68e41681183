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
    charts_lock: Annotated[
        Path | None,
        typer.Option("--charts-lock", help="Chart lock for the `charts` entries (default: beside --lock)."),
    ] = None,
    charts_mirror: Annotated[
        Path | None,
        typer.Option(
            "--charts-mirror",
            envvar="LLM_PLATFORM_CHARTS_MIRROR",
            show_envvar=True,
            help="Take the chart packages from this mirror directory (packages + INDEX.json).",
            metavar="DIR",
        ),
    ] = None,
) -> None:
    """Fetch every locked CRD file not yet cached, from upstream or a mirror, verifying its sha256; a
    missing or mismatching file is refused. Render the CRDs of the lock's `charts` entries from their
    verified chart packages (needs helm). Remove CRD files the lock no longer lists.

    Prints the cache directory on stdout, so `llm-platform lint --crds "$(llm-platform crds sync)"` works.
    """
    from llm_platform.lint.crds_lock import (
        default_crd_cache,
        load_lock,
        prune_crd_cache,
        sync_chart_crds,
        sync_crds,
    )

    target = cache or default_crd_cache()
    crd_lock = load_lock(lock)
    fetched, cached = sync_crds(crd_lock, target, mirror=mirror)
    log.info(
        "crds: %d fetched from %s, %d already cached and verified", fetched, mirror or "upstream", cached
    )
    rendered, kept = sync_chart_crds(
        crd_lock,
        target,
        charts_lock=charts_lock or lock.with_name("charts.lock.yaml"),
        charts_mirror=charts_mirror,
    )
    if crd_lock.charts:
        log.info(
            "crds: %d chart CRD file(s) rendered from their verified charts, %d up to date", rendered, kept
        )
    for rel in prune_crd_cache(crd_lock, target):
        log.info("crds: removed %s (no longer in the lock)", rel)
    sys.stdout.write(f"{target}\n")

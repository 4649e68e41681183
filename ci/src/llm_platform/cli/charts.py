"""`llm-platform charts sync`: fetch the Helm charts pinned in gitops/charts.lock.yaml into a local cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llm_platform.logs import get_logger

log = get_logger("charts")

# Literal here (also llm_platform.lint.charts_lock.CHARTS_MIRROR_ENV) so `--help` needs no core import.
_MIRROR_ENV = "LLM_PLATFORM_CHARTS_MIRROR"

app = typer.Typer(help="Helm chart packages the GitOps tree uses, pinned and verified.", no_args_is_help=True)

LockFile = Annotated[
    Path, typer.Option("--lock", help="Lock file of charts, versions, repositories and digests.")
]
CacheDir = Annotated[
    Path | None, typer.Option("--cache", help="Cache directory (default ~/.cache/llm-platform/charts).")
]


def _only(verb: str) -> Any:
    return typer.Option(
        "--only",
        help=f"{verb} only this chart (every locked version) or CHART@VERSION; repeatable.",
        metavar="CHART[@VERSION]",
    )


@app.command("sync")
def sync(
    lock: LockFile = Path("gitops/charts.lock.yaml"),
    cache: CacheDir = None,
    mirror: Annotated[
        Path | None,
        typer.Option(
            "--mirror",
            envvar=_MIRROR_ENV,
            show_envvar=True,
            help="Take each chart from DIR (packages <chart>-<version>.tgz and their INDEX.json) instead of "
            "its chart repository; each package is verified against INDEX.json.",
            metavar="DIR",
        ),
    ] = None,
    only: Annotated[list[str] | None, _only("Sync")] = None,
) -> None:
    """Fetch every locked chart package not yet cached, with `helm pull` from its chart repository
    (verified against the lock's published_sha256) or from a mirror (verified against its INDEX.json); a
    missing or mismatching package is refused, naming chart and version.

    Prints the cache directory on stdout; the packages are <cache>/<chart>-<version>.tgz.
    """
    from llm_platform.lint.charts_lock import default_chart_cache, load_lock, sync_charts

    target = cache or default_chart_cache()
    result = sync_charts(load_lock(lock), target, mirror=mirror, only=only or ())
    log.info(
        "charts: %d fetched from %s, %d already cached and verified%s",
        result.fetched,
        mirror or "their chart repositories",
        result.cached,
        f", {len(result.skipped)} skipped (unavailable)" if result.skipped else "",
    )
    sys.stdout.write(f"{target}\n")


@app.command("lock")
def lock_digests(
    lock: LockFile = Path("gitops/charts.lock.yaml"),
    cache: CacheDir = None,
    only: Annotated[list[str] | None, _only("Record")] = None,
) -> None:
    """Record the published sha256 of every locked chart that has none: `helm pull` from its chart
    repository, check the package is that chart and version, and write the digest into the lock (only
    those lines change; nothing is written unless every download succeeded). Run it once on a machine
    with network, review the lock change and commit it: `charts sync` then verifies every later download
    against it.

    Prints what it recorded as JSON on stdout.
    """
    import json

    from llm_platform.lint.charts_lock import record_published_digests

    recorded = record_published_digests(lock, only=only or (), cache=cache)
    for r in recorded:
        log.info(
            "charts lock: %s %s from %s: sha256 %s", r.chart, r.version, r.repository, r.published_sha256
        )
    if not recorded:
        log.info("charts lock: every selected chart already has its published digest")
    sys.stdout.write(json.dumps([r.__dict__ for r in recorded], indent=2) + "\n")

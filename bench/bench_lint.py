"""Lint time for the reference GitOps tree (gitops/, or the clean fixture tree when gitops/ is absent)
and for generated trees N times larger (N full copies, each with its Application paths rewritten to it),
with every Helm chart rendered (the default) and without (--no-render-charts), cold and warm.

Run: LLM_PLATFORM_CHARTS_MIRROR=../shared/charts .venv/bin/python bench/bench_lint.py \
        [--crds DIR] [--copies 20] [--chart-copies 4] [--repeat 5]
Cold: empty render, validation and CRD-schema caches (chart packages already in the `charts sync`
cache). Warm: the same caches after that run. Without charts the first run is a warm-up, not timed.
Copies of the tree with charts get their own release names, so their renders and objects are distinct
(identical objects would be validated once and flatter the growth).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from llm_platform.lint import load_config, run_lint
from llm_platform.lint.crds_lock import default_crd_cache
from llm_platform.lint.helm import HelmOptions


def reference_tree(dest: Path) -> tuple[Path, str]:
    if (REPO / "gitops").is_dir() and any((REPO / "gitops").rglob("kustomization.yaml")):
        shutil.copytree(REPO / "gitops", dest / "gitops")
        return dest, "gitops/ (reference tree)"
    from tests.support.lint_fixtures import build_tree

    build_tree(dest)
    return dest, "tests/fixtures/lint/_clean (reference tree absent)"


def scaled_tree(base: Path, dest: Path, copies: int, *, distinct_releases: bool = False) -> Path:
    """`copies` complete copies of base/gitops: copy 0 in place, copy i under gitops/x<i>/ with every
    'gitops/' path inside it rewritten, so each copy is a self-contained app-of-apps. Every kustomization
    of copy i stamps its objects with a copy annotation, so no two copies render identical objects
    (identical bodies would be validated once: that would flatter the growth); with
    `distinct_releases`, each copy's Helm sources get their own release name for the same reason."""
    for i in range(copies):
        target = dest / "gitops" / (f"x{i}" if i else "")
        for src in (base / "gitops").rglob("*"):
            if src.is_dir():
                continue
            out = target / src.relative_to(base / "gitops")
            out.parent.mkdir(parents=True, exist_ok=True)
            text = src.read_text(encoding="utf-8")
            if i:
                text = text.replace("gitops/", f"gitops/x{i}/")
                if distinct_releases and "chart:" in text:
                    text = _release_suffix(text, i)
            if src.name == "kustomization.yaml" and "commonAnnotations" not in text:
                text += f'commonAnnotations:\n  bench.llm-platform.io/copy: "{i}"\n'
            out.write_text(text, encoding="utf-8")
    return dest


def _release_suffix(text: str, i: int) -> str:
    """Give each Helm source of an Application file release name `<name>-x<i>`."""
    lines, out = text.splitlines(keepends=True), []
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("  name:")), "app")
    for ln in lines:
        if ln.strip().startswith("releaseName:"):
            ln = ln.rstrip("\n") + f"-x{i}\n"
        elif ln.strip().startswith("helm:") and not any("releaseName" in x for x in lines):
            indent = ln[: len(ln) - len(ln.lstrip())]
            ln = ln + f"{indent}  releaseName: {name}-x{i}\n"
        out.append(ln)
    return "".join(out)


def _lint(repo: Path, crds: list[Path], caches: Path, charts: bool):
    config = repo / "gitops" / "lint.yaml"  # what `llm-platform lint` reads by default
    return run_lint(
        [repo / "gitops"],
        crd_dirs=crds,
        cwd=repo,
        config=load_config(config) if config.is_file() else None,
        cache_dir=caches / "crd-schemas",
        render_charts=charts,
        helm_options=HelmOptions(render_cache=caches / "helm-renders"),
    )


def time_lint(repo: Path, crds: list[Path], repeat: int, charts: bool) -> dict[str, float | int]:
    """Median warm time (and, with charts, the cold time of the first run) and the tree's size."""
    with tempfile.TemporaryDirectory(prefix="bench-lint-caches-") as caches:
        t0 = time.perf_counter()
        report = _lint(repo, crds, Path(caches), charts)  # cold (with charts) or warm-up (without)
        cold = time.perf_counter() - t0
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            report = _lint(repo, crds, Path(caches), charts)
            times.append(time.perf_counter() - t0)
    cov = report.coverage
    return {
        "cold": cold,
        "warm": statistics.median(times),
        "files": cov.files,
        "objects": cov.objects,
        "findings": len(report.findings),
        "charts": len(cov.charts_rendered),
    }


def cli_wall(repo: Path, crds: list[Path]) -> float:
    exe = str(Path(sys.executable).with_name("llm-platform"))
    args = [exe, "lint", "gitops", *[a for d in crds for a in ("--crds", str(d))]]
    t0 = time.perf_counter()
    subprocess.run(args, cwd=repo, capture_output=True, check=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crds", type=Path, action="append", default=None)
    parser.add_argument("--copies", type=int, default=20, help="copies of the tree without charts")
    parser.add_argument("--chart-copies", type=int, default=4, help="copies of the tree with charts")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    crds = args.crds or [default_crd_cache()]  # `llm-platform crds sync` fills it (chart CRDs included)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-lint-") as tmp:
        base, label = reference_tree(Path(tmp) / "base")
        big = scaled_tree(base, Path(tmp) / "big", args.copies)
        charted = scaled_tree(base, Path(tmp) / "charted", args.chart_copies, distinct_releases=True)
        plain = time_lint(base, crds, args.repeat, charts=False)
        rows.append(("reference, no charts", plain))
        rows.append((f"generated {args.copies}x, no charts", time_lint(big, crds, 2, charts=False)))
        with_charts = time_lint(base, crds, args.repeat, charts=True)
        rows.append(("reference, charts rendered", with_charts))
        rows.append(
            (f"generated {args.chart_copies}x, charts rendered", time_lint(charted, crds, 2, charts=True))
        )
        wall = cli_wall(base, crds)
    print(
        f"tree: {label}; CRDs: {', '.join(map(str, crds))}; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; cold = empty render/validation/CRD-schema caches "
        "(chart packages already synced), warm = median of the runs after it"
    )
    print(
        "| tree | files | objects | charts rendered | findings | cold (s) | warm (s) | warm ratio | objects ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        ref = plain if "no charts" in name else with_charts
        cold = f"{r['cold']:.2f}" if r["charts"] else "-"
        print(
            f"| {name} | {r['files']} | {r['objects']} | {r['charts']} | {r['findings']} | {cold} | "
            f"{r['warm']:.2f} | {r['warm'] / ref['warm']:.1f}x | {r['objects'] / ref['objects']:.1f}x |"
        )
    print(
        f"CLI wall time on the reference tree (process start, imports, charts rendered, warm): {wall:.2f} s"
    )
    big_plain, big_charts = rows[1][1], rows[3][1]
    linear = all(
        big["warm"] / ref["warm"] <= 1.25 * big["objects"] / ref["objects"]
        for big, ref in ((big_plain, plain), (big_charts, with_charts))
    )
    print(
        f"target: reference warm with charts < 3 s -> {'PASS' if with_charts['warm'] < 3 else 'FAIL'}; "
        f"growth linear (warm time ratio <= 1.25 x object ratio) -> {'PASS' if linear else 'FAIL'}"
    )


if __name__ == "__main__":
    main()

"""Lint time for the reference GitOps tree (gitops/, or the clean fixture tree when gitops/ is absent)
and for a generated tree 20x larger (20 full copies, each with its Application paths rewritten to it).

Run: .venv/bin/python bench/bench_lint.py [--crds ../shared/crds] [--copies 20] [--repeat 5]
The first run of each tree is a warm-up (cold kubectl start, CRD schema cache) and is not timed.
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

from llm_platform.lint import run_lint


def reference_tree(dest: Path) -> tuple[Path, str]:
    if (REPO / "gitops").is_dir() and any((REPO / "gitops").rglob("kustomization.yaml")):
        shutil.copytree(REPO / "gitops", dest / "gitops")
        return dest, "gitops/ (reference tree)"
    from tests.support.lint_fixtures import build_tree

    build_tree(dest)
    return dest, "tests/fixtures/lint/_clean (reference tree absent)"


def scaled_tree(base: Path, dest: Path, copies: int) -> Path:
    """`copies` complete copies of base/gitops: copy 0 in place, copy i under gitops/x<i>/ with every
    'gitops/' path inside it rewritten, so each copy is a self-contained app-of-apps. Every kustomization
    of copy i stamps its objects with a copy annotation, so no two copies render identical objects
    (identical bodies would be validated once: that would flatter the growth)."""
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
            if src.name == "kustomization.yaml" and "commonAnnotations" not in text:
                text += f'commonAnnotations:\n  bench.llm-platform.io/copy: "{i}"\n'
            out.write_text(text, encoding="utf-8")
    return dest


def time_lint(repo: Path, crds: list[Path], repeat: int) -> tuple[float, int, int, int]:
    run_lint([repo / "gitops"], crd_dirs=crds, cwd=repo)  # warm-up: not timed
    times = []
    report = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        report = run_lint([repo / "gitops"], crd_dirs=crds, cwd=repo)
        times.append(time.perf_counter() - t0)
    assert report is not None
    return statistics.median(times), report.coverage.files, report.coverage.objects, len(report.findings)


def cli_wall(repo: Path, crds: list[Path]) -> float:
    exe = str(Path(sys.executable).with_name("llm-platform"))
    args = [exe, "lint", "gitops", *[a for d in crds for a in ("--crds", str(d))]]
    t0 = time.perf_counter()
    subprocess.run(args, cwd=repo, capture_output=True, check=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crds", type=Path, action="append", default=None)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    crds = args.crds or [REPO.parent / "shared" / "crds"]
    with tempfile.TemporaryDirectory(prefix="bench-lint-") as tmp:
        base, label = reference_tree(Path(tmp) / "base")
        big = scaled_tree(base, Path(tmp) / "big", args.copies)
        t1, f1, o1, n1 = time_lint(base, crds, args.repeat)
        t20, f20, o20, n20 = time_lint(big, crds, 2)
        wall = cli_wall(base, crds)
    print(
        f"tree: {label}; CRDs: {', '.join(map(str, crds))}; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; warm runs (kubectl started and CRD cache filled by an "
        "untimed first run); median time"
    )
    print("| tree | files | objects | findings | lint time (s) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| reference | {f1} | {o1} | {n1} | {t1:.2f} | 1.0x |")
    print(
        f"| generated {args.copies}x | {f20} | {o20} | {n20} | {t20:.2f} | {t20 / t1:.1f}x "
        f"(objects {o20 / o1:.1f}x, time per object {t20 / o20 * 1000:.1f} ms vs {t1 / o1 * 1000:.1f} ms) |"
    )
    print(f"CLI wall time on the reference tree (process start, imports, cold kubectl): {wall:.2f} s")
    print(
        f"target: reference < 3 s -> {'PASS' if t1 < 3 else 'FAIL'}; "
        f"growth linear (time ratio <= 1.25 x object ratio) -> "
        f"{'PASS' if t20 / t1 <= 1.25 * o20 / o1 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()

"""Peak memory of `llm-platform modelcar build` on generated models of growing size.

Generates shard files (sparse, with random 1 MiB blocks spread through them so the bytes are not
all zeros) in a temp dir, builds each model into an OCI layout in a subprocess on a busybox base
made with umoci, and reads the child's peak RSS from wait4(). A streaming build keeps RSS flat as
the model grows; the budget is 256 MiB for a 2 GiB model.

    .venv/bin/python bench/bench_build_memory.py [--sizes-mib 256,2048] [--shards 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.images import build_busybox_layout

LIMIT_MIB = 256
MIB = 1 << 20
SPEC = """\
huggingface:
  repo: example/bench-model
  revision: main
  allow_patterns: ["*.safetensors", "*.json"]
image:
  repository: registry.example.com/modelcars/bench-model
serving:
  served_model_name: bench-model
"""


def make_model(directory: Path, total_mib: int, shards: int) -> None:
    directory.mkdir(parents=True)
    per_shard = total_mib * MIB // shards
    for index in range(shards):
        path = directory / f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        with path.open("wb") as handle:
            handle.truncate(per_shard)
            for offset in range(0, per_shard, 64 * MIB):
                handle.seek(offset)
                handle.write(os.urandom(min(MIB, per_shard - offset)))
    (directory / "config.json").write_text('{"architectures": ["BenchModel"]}')


def build(spec: Path, source: Path, base: str, output: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, stdout) of one build in a child process."""
    command = [
        str(Path(sys.executable).parent / "llm-platform"),
        "modelcar",
        "build",
        str(spec),
        "--source-dir",
        str(source),
        "--base",
        base,
        "--output",
        str(output),
    ]
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    stdout = proc.stdout.read().decode().strip() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"build failed: {' '.join(command)}")
    return seconds, usage.ru_maxrss / 1024, stdout  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes-mib", default="256,2048", help="model sizes to build, MiB, comma-separated")
    parser.add_argument("--shards", type=int, default=4, help="shard files per model")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mib.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-build-memory-"))
    rows = []
    try:
        base = build_busybox_layout(work / "base")
        spec = work / "bench-model.yaml"
        spec.write_text(SPEC)
        for size in sizes:
            source = work / f"model-{size}"
            make_model(source, size, args.shards)
            seconds, rss, reference = build(spec, source, base.ref, work / f"layout-{size}")
            rows.append(
                (size, args.shards + 1, seconds, size / seconds, rss, reference.rsplit("@", 1)[-1][:19])
            )
            shutil.rmtree(source)
            shutil.rmtree(work / f"layout-{size}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{'model MiB':>9} | {'files':>5} | {'build s':>7} | {'MiB/s':>6} | {'peak RSS MiB':>12} | {'limit':>5} | ok  | digest"
    )
    print(
        "-" * 9
        + "-+-"
        + "-" * 5
        + "-+-"
        + "-" * 7
        + "-+-"
        + "-" * 6
        + "-+-"
        + "-" * 12
        + "-+-"
        + "-" * 5
        + "-+-----+"
        + "-" * 20
    )
    worst = 0.0
    for size, files, seconds, rate, rss, digest in rows:
        worst = max(worst, rss)
        ok = "yes" if rss < LIMIT_MIB else "NO"
        print(
            f"{size:>9} | {files:>5} | {seconds:>7.1f} | {rate:>6.0f} | {rss:>12.1f} | {LIMIT_MIB:>5} | {ok:<3} | {digest}"
        )
    return 0 if worst < LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Publish benchmark: our `modelcar publish` against the floor (the same layer bytes sent with plain curl),
`oci-modelcar` (PyPI) and a Containerfile build + push with buildah, on the same generated shard files, each
tool against its own instance of the same local docker-registry (same binary, same config, same disk).
Cold push, warm re-push, one-file change; and "from the Hub" (`--hub-rate-mib`, `--only-hub`): the same shards
served by a loopback Hub stand-in, the network throttled to one fixed rate each way (the Hub's sending and the
registry's receiving, through a throttling TCP relay), so that the network and not the disk is the limit: ours
streaming from the Hub, `hf download` then our publish from the directory, oci-modelcar (downloads, then
pushes), against the floor max(the bytes downloaded alone, the layers uploaded alone).

Run from the repo root:  .venv/bin/python bench/bench_publish.py [--shards 4 --shard-mib 512 --repeat 3]

Why one registry per tool: the registry stores blobs once, whatever the repository. Pushing the same layers
a second time into another repository of the same registry is not a cold push: the registry finds the blob
already stored and deletes the new upload, and deleting 512 MiB files still being written back to disk
waits on the disk. Every cold run therefore starts from an empty registry; warm and one-file runs use the
state that tool's own previous run left.

Measures per run: wall time, bytes the registry received (the registry process's `rchar`, i.e. what it
read from its sockets and files, headers included), peak RSS of the tool (GNU time, children included),
tool and registry CPU. Floor and ours run `--repeat` times per scenario, interleaved; the table shows
medians and the ratio of medians to the floor's. Everything lives in a temp dir, removed after.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "ci" / "src"))

from llm_platform.modelcar.build import build_layout
from llm_platform.modelcar.prepare import SourceOptions
from tests.support.images import build_busybox_layout
from tests.support.registry import Registry

MiB = 1024 * 1024
TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"
SPEC = """\
huggingface:
  repo: bench-org/bench-model
  revision: {revision}
  allow_patterns: ["*"]
  ignore_patterns: []
image:
  repository: us-central1-docker.pkg.dev/llm-platform-example/modelcars/bench-model
  base: docker.io/library/busybox:1.37.0@sha256:bdf57e528e45e4433820e045b29b4597825a1c9e38353532d90a01445013f82e
serving:
  served_model_name: bench-model
"""
REVISION = "0123456789abcdef0123456789abcdef01234567"
PAIRED = ("floor (curl PUT)", "llm-platform publish")
AFTER_BUILD = "cold, after a build"  # repeated, interleaved, compared run by run


@dataclass
class Run:
    tool: str
    scenario: str
    seconds: float
    bytes_received: int
    peak_rss_kib: int
    cpu_seconds: float
    registry_cpu_seconds: float
    ok: bool
    note: str = ""
    repetition: int = 0
    peak_disk: int = 0  # bytes: the most the tool's scratch directory (hub cache, downloads, spool, tmp) held


def write_random(path: Path, size: int) -> str:
    sha = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = os.urandom(min(left, 8 * MiB))
            out.write(piece)
            sha.update(piece)
            left -= len(piece)
    return sha.hexdigest()


def rchar(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def settle(inputs: list[Path], prepare: list[list[str]]) -> None:
    """The same memory state before every run. No write-back pending from the previous one (the pre-built
    layout, the last run's registry writes): otherwise whichever runs next pays for the others' disk writes.
    With root, the page cache is emptied too (a full cache makes every page a later run writes cost a
    reclaim, so runs would slow down as the bench goes on) and then the tool's input files are read back in:
    every tool starts with its inputs in memory and the rest of memory free. `prepare` (untimed) loads the
    tool's own code back, so no tool pays for reading its executables and libraries from disk."""
    os.sync()
    if os.access(DROP_CACHES, os.W_OK):
        DROP_CACHES.write_text("1\n")
    for command in prepare:
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    for path in inputs:
        with path.open("rb") as source:
            while source.read(8 * MiB):
                pass


def measure(
    tool: str,
    scenario: str,
    commands: list[list[str]],
    registry: Registry,
    env: dict[str, str],
    log: Path,
    inputs: list[Path],
    prepare: list[list[str]],
    scratch: Path | None = None,
) -> Run:
    """Run the commands one after the other; wall time, registry bytes received, peak RSS of any of them, and
    (with `scratch`) the peak size of that directory, sampled every 0.2 s while they run."""
    assert registry.proc is not None
    settle(inputs, prepare)
    peak_disk = [0]
    sampling = threading.Event()

    def sample() -> None:
        while scratch is not None and not sampling.wait(0.2):
            used = 0
            for path in scratch.rglob("*"):
                with contextlib.suppress(OSError):
                    used += path.lstat().st_blocks * 512
            peak_disk[0] = max(peak_disk[0], used)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    before = rchar(registry.proc.pid)
    registry_cpu = cpu_of(registry.proc.pid)
    peak = 0
    cpu = 0.0
    ok = True
    started = time.monotonic()
    rss_file = log.with_name("rss.txt")
    with log.open("a") as out:
        for command in commands:
            out.write(f"\n$ {' '.join(command)}\n")
            out.flush()
            # GNU time reports its child's own peak RSS: a child forked straight from this (big) Python
            # process would inherit our high-water mark in ru_maxrss.
            proc = subprocess.run(
                [TIME, "-f", "%M %U %S", "-o", str(rss_file), *command],
                stdout=out,
                stderr=out,
                check=False,
                env=env,
            )
            rss, user, system = rss_file.read_text().split()[-3:]
            peak = max(peak, int(rss))
            cpu += float(user) + float(system)
            if proc.returncode != 0:
                ok = False
                break
    seconds = time.monotonic() - started
    sampling.set()
    sampler.join()
    return Run(
        tool,
        scenario,
        seconds,
        rchar(registry.proc.pid) - before,
        peak,
        cpu,
        cpu_of(registry.proc.pid) - registry_cpu,
        ok,
        peak_disk=peak_disk[0],
    )


FLOOR_SCRIPT = r"""#!/usr/bin/env bash
# The floor: for each blob of the pre-built layout, HEAD it; when missing POST a session and PUT the file
# with curl -T (monolithic, streamed from disk). Then PUT the manifest. Blobs in parallel (xargs -P).
set -euo pipefail
registry=$1 repo=$2 layout=$3 concurrency=$4
push_blob() {
  digest=$1
  if curl -sf -o /dev/null -I "http://$registry/v2/$repo/blobs/$digest"; then return 0; fi
  location=$(curl -sf -D - -o /dev/null -X POST "http://$registry/v2/$repo/blobs/uploads/" \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  case $location in http*) ;; *) location="http://$registry$location";; esac
  sep='?'; case $location in *\?*) sep='&';; esac
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
    -T "$layout/blobs/sha256/${digest#sha256:}" "$location${sep}digest=$digest"
}
export -f push_blob; export registry repo layout
manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"])' "$layout")
python3 -c '
import json, sys
m = json.load(open(sys.argv[1] + "/blobs/sha256/" + sys.argv[2][7:]))
for d in sorted([m["config"], *m["layers"]], key=lambda d: -d["size"]): print(d["digest"])
' "$layout" "$manifest" | xargs -P "$concurrency" -I{} bash -c 'push_blob {}'
curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary "@$layout/blobs/sha256/${manifest#sha256:}" "http://$registry/v2/$repo/manifests/$manifest"
"""


class Throttle:
    """One link's rate for everything that crosses it: `take(n)` returns when n more bytes may go."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._next = 0.0
        self._lock = threading.Lock()

    def take(self, count: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            self._next = max(self._next, now) + count / self.rate
            wait = self._next - count / self.rate - now
        if wait > 0:
            time.sleep(wait)


class ThrottledRelay:
    """A TCP relay on 127.0.0.1 in front of a registry: what clients send is throttled to `rate` (the uplink),
    what the registry answers is not."""

    def __init__(self, upstream: tuple[str, int], rate: float) -> None:
        self.upstream, self.throttle = upstream, Throttle(rate)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, throttled: bool) -> None:
        try:
            while data := source.recv(256 * 1024):
                if throttled:
                    self.throttle.take(len(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()


class FakeHub:
    """Just enough of the Hugging Face hub API for oci-modelcar (repo info, tree, resolve with Range) over
    the generated files, on 127.0.0.1: oci-modelcar only reads models from a hub, never from a directory."""

    def __init__(self, root: Path, repo: str, revision: str, rate: float | None = None) -> None:
        self.root, self.repo, self.revision = root, repo, revision
        self.sha: dict[str, str] = {}
        self.throttle = Throttle(rate)  # every file byte sent, all connections together
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_HEAD(self) -> None:
                self.do_GET(head=True)

            def do_GET(self, head: bool = False) -> None:
                path = self.path.split("?")[0]
                files = sorted(p for p in server.root.iterdir() if p.is_file())
                if path.startswith(f"/api/models/{server.repo}/revision/"):
                    self._json(
                        {
                            "id": server.repo,
                            "modelId": server.repo,
                            "sha": server.revision,
                            "private": False,
                            "siblings": [
                                {
                                    "rfilename": p.name,
                                    "size": p.stat().st_size,
                                    "lfs": {
                                        "sha256": server.sha[p.name],
                                        "size": p.stat().st_size,
                                        "pointerSize": 134,
                                    },
                                }
                                for p in files
                            ],
                        }
                    )
                elif path.startswith(f"/api/models/{server.repo}/tree/"):
                    entries = []
                    for p in files:
                        size = p.stat().st_size
                        entries.append(
                            {
                                "type": "file",
                                "oid": hashlib.sha1(p.name.encode()).hexdigest(),
                                "size": size,
                                "path": p.name,
                                "lfs": {"oid": server.sha[p.name], "size": size, "pointerSize": 134},
                            }
                        )
                    self._json(entries)
                elif path.startswith(f"/{server.repo}/resolve/"):
                    file = server.root / path.rsplit("/", 1)[1]
                    size = file.stat().st_size
                    start = 0
                    if self.headers.get("Range", "").startswith("bytes="):
                        start = int(self.headers["Range"][6:].split("-")[0] or 0)
                    self.send_response(206 if start else 200)
                    self.send_header("Content-Length", str(size - start))
                    self.send_header("ETag", f'"{server.sha[file.name]}"')
                    self.send_header("X-Repo-Commit", server.revision)
                    if start:
                        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                    self.end_headers()
                    if not head:
                        with file.open("rb") as src:
                            src.seek(start)
                            while piece := src.read(MiB // 4):
                                server.throttle.take(len(piece))
                                self.wfile.write(piece)
                else:
                    self.send_error(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HUB_FLOORS = ("download alone (curl)", "upload alone (curl PUT)")
HUB_OURS = "llm-platform publish, streaming"
HUB_TWO_STEP = "hf download, then llm-platform publish --source-dir"
HUB_SCENARIO = "from the Hub"


def hub_round(
    args: argparse.Namespace,
    work: Path,
    source: Path,
    hashes: dict[str, str],
    spec: Path,
    base_ref: str,
    layout: Path,
    floor_script: Path,
    log: Path,
) -> list[Run]:
    """Every tool cold (an empty registry, an empty scratch directory), the network throttled each way."""
    rate = args.hub_rate_mib * MiB
    hub = FakeHub(source, "bench-org/bench-model", REVISION, rate=rate)
    hub.sha = hashes
    registry = Registry(work / "registry-hub")
    runs: list[Run] = []
    relay: ThrottledRelay | None = None
    llm = str(REPO / ".venv" / "bin" / "llm-platform")
    hf = str(REPO / ".venv" / "bin" / "hf")
    names = sorted(hashes)
    download_all = (
        "printf '%s\\n' " + " ".join(names) + f" | xargs -P {args.concurrency} -I{{}} "
        f"curl -sf -o /dev/null {hub.endpoint}/bench-org/bench-model/resolve/{REVISION}/{{}}"
    )
    try:
        registry.start()
        relay = ThrottledRelay(("127.0.0.1", registry.port), rate)
        target = relay.host
        scratch = work / "scratch"
        tools: dict[str, Callable[[], list[list[str]]]] = {
            HUB_FLOORS[0]: lambda: [["bash", "-c", download_all]],
            HUB_FLOORS[1]: lambda: [
                ["bash", str(floor_script), target, "bench/floor", str(layout), str(args.concurrency)]
            ],
            HUB_OURS: lambda: [
                [
                    llm,
                    "modelcar",
                    "publish",
                    str(spec),
                    "--base",
                    base_ref,
                    "--to",
                    f"{target}/bench/ours",
                    "--cache-dir",
                    str(scratch / "cache"),
                    "--concurrency",
                    str(args.concurrency),
                ]
            ],
            HUB_TWO_STEP: lambda: [
                [
                    hf,
                    "download",
                    "bench-org/bench-model",
                    "--revision",
                    REVISION,
                    "--local-dir",
                    str(scratch / "download"),
                    "--max-workers",
                    str(args.concurrency),
                    "--quiet",
                ],
                [
                    llm,
                    "modelcar",
                    "publish",
                    str(spec),
                    "--source-dir",
                    str(scratch / "download"),
                    "--base",
                    base_ref,
                    "--to",
                    f"{target}/bench/two-step",
                    "--cache-dir",
                    str(scratch / "cache"),
                    "--concurrency",
                    str(args.concurrency),
                ],
            ],
        }
        if "oci-modelcar" not in args.skip and args.oci_modelcar.exists():
            tools["oci-modelcar"] = lambda: [
                [
                    str(args.oci_modelcar),
                    "push",
                    "--hf-repo",
                    "bench-org/bench-model",
                    "--hf-revision",
                    REVISION,
                    "--hf-endpoint",
                    hub.endpoint,
                    "--registry",
                    target,
                    "--target-repo",
                    "bench/oci-modelcar",
                    "--workers",
                    str(args.concurrency),
                    "--spool-dir",
                    str(scratch / "spool"),
                    "--quiet",
                    "--force",
                    "--no-reuse-records",
                ]
            ]
        elif "oci-modelcar" not in args.skip:
            print(f"oci-modelcar not found at {args.oci_modelcar}: left out", file=sys.stderr)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HF_ENDPOINT": hub.endpoint,
            "HF_HOME": str(scratch / "hf-home"),
            "TMPDIR": str(scratch / "tmp"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }
        inputs = sorted(
            p for p in [*source.iterdir(), *(layout / "blobs" / "sha256").iterdir()] if p.is_file()
        )
        for repetition in range(args.repeat):
            for tool, commands in tools.items():
                if repetition and tool not in (*HUB_FLOORS, HUB_OURS):
                    continue
                registry.stop()
                shutil.rmtree(registry.storage, ignore_errors=True)
                registry.start()
                shutil.rmtree(scratch, ignore_errors=True)
                (scratch / "tmp").mkdir(parents=True)
                result = measure(tool, HUB_SCENARIO, commands(), registry, env, log, inputs, [], scratch)
                result.repetition = repetition
                runs.append(result)
                print(f"{HUB_SCENARIO} {tool}: {result.seconds:.2f}s", file=sys.stderr)
    finally:
        if relay is not None:
            relay.stop()
        hub.stop()
        registry.stop()
    return runs


def hub_report(runs: list[Run], args: argparse.Namespace) -> None:
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.tool, []).append(r)

    def median(tool: str) -> float:
        return statistics.median(r.seconds for r in groups[tool])

    floor = max(median(HUB_FLOORS[0]), median(HUB_FLOORS[1]))
    total = args.shards * args.shard_mib
    print(
        f"\nfrom the Hub: {args.shards} x {args.shard_mib} MiB shards ({total} MiB), concurrency "
        f"{args.concurrency}, the Hub's sending and the registry's receiving each throttled to "
        f"{args.hub_rate_mib} MiB/s; floor = max(download alone, upload alone) = {floor:.2f} s\n"
    )
    print(
        "| tool | runs (wall s) | median s | x floor | peak RSS MiB | peak disk MiB | MiB received by registry | ok |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for tool, group in groups.items():
        print(
            f"| {tool} | {' '.join(f'{r.seconds:.2f}' for r in group)} | {median(tool):.2f} | "
            f"{median(tool) / floor:.2f} | {max(r.peak_rss_kib for r in group) / 1024:.0f} | "
            f"{max(r.peak_disk for r in group) / MiB:.1f} | "
            f"{statistics.median(r.bytes_received for r in group) / MiB:.1f} | "
            f"{'yes' if all(r.ok for r in group) else 'FAILED'} |"
        )
    ours = median(HUB_OURS)
    print(f"ours / floor: {ours / floor:.2f} (target <= 1.15)")
    print(f"download-then-publish / ours: {median(HUB_TWO_STEP) / ours:.2f} (target >= 1.8)")
    if "oci-modelcar" in groups:
        print(f"oci-modelcar / ours: {median('oci-modelcar') / ours:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-mib", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario of the floor and of ours")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temp dir under /tmp")
    parser.add_argument(
        "--oci-modelcar",
        type=Path,
        default=Path("/tmp/bench-ocimc/bin/oci-modelcar"),
        help="oci-modelcar executable (pip install oci-modelcar==1.3.0 into its own venv)",
    )
    parser.add_argument("--skip", action="append", default=[], choices=["buildah", "oci-modelcar"])
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument(
        "--hub-rate-mib",
        type=float,
        default=64,
        help="the network's rate each way in the Hub scenario (MiB/s)",
    )
    parser.add_argument("--only-hub", action="store_true", help="run the from-the-Hub scenario only")
    parser.add_argument("--no-hub", action="store_true", help="leave the from-the-Hub scenario out")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="registry on CPU 0, the tool on CPU 1 (taskset): client and registry do not compete "
        "for cores, as when they are different machines",
    )
    args = parser.parse_args()
    if args.shards * args.shard_mib > 3072:
        parser.error("keep the generated set at 3 GiB or less")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bp-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    registries: dict[str, Registry] = {}
    hub: FakeHub | None = None
    runs: list[Run] = []
    hub_runs: list[Run] = []
    log = work / "bench.log"
    buildah_root = Path(tempfile.mkdtemp(prefix="bb-", dir="/tmp"))
    try:
        # Our package's bytecode, as an installed wheel has it (PYTHONDONTWRITEBYTECODE would otherwise make
        # every run of ours compile its modules again).
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(REPO / "ci" / "src")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        source = work / "weights"
        source.mkdir()
        print(
            f"generating {args.shards} x {args.shard_mib} MiB of random shards in {source}", file=sys.stderr
        )
        names = [f"model-{i + 1:05d}-of-{args.shards:05d}.safetensors" for i in range(args.shards)]
        hashes = {name: write_random(source / name, args.shard_mib * MiB) for name in names}
        (source / "config.json").write_text(
            json.dumps({"architectures": ["BenchModel"], "hidden_size": 4096})
        )
        hashes["config.json"] = hashlib.sha256((source / "config.json").read_bytes()).hexdigest()
        spec = work / "modelcars" / "bench-model.yaml"
        spec.parent.mkdir()
        spec.write_text(SPEC.format(revision=REVISION))
        base = build_busybox_layout(work / "base")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        floor_script = work / "floor.sh"
        floor_script.write_text(FLOOR_SCRIPT)
        layout = work / "layout"

        built_cache = work / "cache-built"

        def prebuild() -> None:
            """Not timed: the floor gets its layer tars and digests for free. The same build records the
            digests in a digest cache, which ours uses only in the "cold, after a build" scenario."""
            if layout.exists():
                shutil.rmtree(layout)
            shutil.rmtree(built_cache, ignore_errors=True)
            build_layout(
                SourceOptions(spec=spec, source_dir=source, base=base.ref, cache_dir=built_cache),
                output=layout,
            )

        buildah = [
            shutil.which("buildah") or "buildah",
            "--root",
            str(buildah_root / "r"),
            "--runroot",
            str(buildah_root / "u"),
            "--storage-driver",
            "vfs",
        ]
        containerfile = work / "Containerfile"
        containerfile.write_text(
            f"FROM oci:{base.path}:{base.tag}\n"
            + "".join(f"COPY {name} /models/{name}\n" for name in sorted(hashes))
        )

        def our_cache(scenario: str) -> Path:
            """A cold push starts with an empty digest cache (nothing hashed yet); "after a build" with the
            build's; warm and one-file runs with what the previous run left."""
            cache = work / "cache"
            if scenario.startswith("cold"):
                shutil.rmtree(cache, ignore_errors=True)
                if scenario == AFTER_BUILD:
                    shutil.copytree(built_cache, cache)
            return cache

        # tool -> (command lines for a registry host and scenario, extra environment, note)
        tools: dict[str, tuple[Callable[[str, str], list[list[str]]], dict[str, str], str]] = {
            "floor (curl PUT)": (
                lambda host, _: [
                    ["bash", str(floor_script), host, "bench/floor", str(layout), str(args.concurrency)]
                ],
                {},
                "",
            ),
            "llm-platform publish": (
                lambda host, scenario: [
                    [
                        str(REPO / ".venv" / "bin" / "llm-platform"),
                        "modelcar",
                        "publish",
                        str(spec),
                        "--source-dir",
                        str(source),
                        "--base",
                        base.ref,
                        "--to",
                        f"{host}/bench/ours",
                        "--cache-dir",
                        str(our_cache(scenario)),
                        "--concurrency",
                        str(args.concurrency),
                    ]
                ],
                {},
                "",
            ),
        }
        if "oci-modelcar" not in args.skip and args.oci_modelcar.exists():
            hub = FakeHub(source, "bench-org/bench-model", REVISION)
            hub.sha = hashes
            tools["oci-modelcar"] = (
                lambda host, _: [
                    [
                        str(args.oci_modelcar),
                        "push",
                        "--hf-repo",
                        "bench-org/bench-model",
                        "--hf-revision",
                        REVISION,
                        "--hf-endpoint",
                        hub.endpoint,
                        "--registry",
                        host,
                        "--target-repo",  # type: ignore[union-attr]
                        "bench/oci-modelcar",
                        "--workers",
                        str(args.concurrency),
                        "--spool-dir",
                        str(work / "spool"),
                        "--quiet",
                        "--force",
                        "--no-reuse-records",
                    ]
                ],
                {"HF_HUB_DISABLE_TELEMETRY": "1"},
                "(downloads from a local fake hub: it has no local-dir input)",
            )
        elif "oci-modelcar" not in args.skip:
            print(f"oci-modelcar not found at {args.oci_modelcar}: skipped", file=sys.stderr)
        if "buildah" not in args.skip:
            tools["buildah bud + push"] = (
                lambda host, _: [
                    [
                        *buildah,
                        "bud",
                        "--layers",
                        "--quiet",
                        "-t",
                        "bench-model:latest",
                        "-f",
                        str(containerfile),
                        str(source),
                    ],
                    [
                        *buildah,
                        "push",
                        "--tls-verify=false",
                        "--quiet",
                        "bench-model:latest",
                        f"docker://{host}/bench/buildah:latest",
                    ],
                ],
                {},
                "",
            )
        repeats = {tool: args.repeat if tool in PAIRED else 1 for tool in tools}
        python = str(REPO / ".venv" / "bin" / "python")
        prepare = {  # untimed, after the page cache is dropped: each tool's code back in memory
            "floor (curl PUT)": [
                ["bash", "-c", "curl --version; xargs --version; awk --version; python3 -c pass"]
            ],
            "llm-platform publish": [
                [
                    python,
                    "-c",
                    (
                        "import llm_platform.cli.commands, llm_platform.modelcar.publish, "
                        "llm_platform.registry.client"
                    ),
                ]
            ],
            "oci-modelcar": [[str(args.oci_modelcar), "--help"]],
            "buildah bud + push": [[*buildah, "--version"]],
        }
        pin_registry, pin_tool = (["taskset", "-c", "0"], ["taskset", "-c", "1"]) if args.pin else ([], [])
        for index, tool in enumerate(tools):
            registries[tool] = Registry(work / f"registry-{index}", wrapper=pin_registry)
        if not os.access(DROP_CACHES, os.W_OK):
            print(
                f"{DROP_CACHES} not writable: runs start with whatever the page cache holds", file=sys.stderr
            )

        def run(tool: str, scenario: str, repetition: int) -> None:
            commands, extra_env, note = tools[tool]
            registry = registries[tool]
            if scenario.startswith("cold"):  # an empty registry: nothing stored by anyone
                registry.stop()
                shutil.rmtree(registry.storage, ignore_errors=True)
            if registry.proc is None:
                registry.start()
            inputs = sorted(
                p for p in (layout if tool.startswith("floor") else source).rglob("*") if p.is_file()
            )
            lines = [[*pin_tool, *line] for line in commands(registry.host, scenario)]
            result = measure(
                tool, scenario, lines, registry, {**env, **extra_env}, log, inputs, prepare[tool]
            )
            result.note, result.repetition = note, repetition
            runs.append(result)
            print(f"{scenario} {tool}: {result.seconds:.2f}s", file=sys.stderr)

        def in_order(repetition: int) -> list[str]:
            """The floor and ours back to back, which goes first alternating (the machine drifts), then the rest."""
            pair = PAIRED if repetition % 2 == 0 else PAIRED[::-1]
            order = [*pair, *(tool for tool in tools if tool not in PAIRED)]
            return [tool for tool in order if repetition < repeats[tool]]

        def round_(scenario: str) -> None:
            prebuild()
            for repetition in range(max(repeats.values())):
                for tool in in_order(repetition):
                    run(tool, scenario, repetition)

        if not args.no_hub:
            prebuild()
            hub_runs = hub_round(args, work, source, hashes, spec, base.ref, layout, floor_script, log)
        if not args.only_hub:
            round_("cold")
            round_("warm")
            # Ours with the digests a build of the same files recorded, against the same cold floor: both sides
            # start knowing every digest (only floor and ours: the others have no such input).
            for repetition in range(args.repeat):
                for tool in in_order(repetition)[:2]:
                    run(tool, AFTER_BUILD, repetition)
            # One-file change: each repetition writes the first shard anew, then every tool publishes it.
            for repetition in range(max(repeats.values())):
                hashes[names[0]] = write_random(source / names[0], args.shard_mib * MiB)
                prebuild()
                for tool in in_order(repetition):
                    run(tool, "one-file change", repetition)
            subprocess.run([*buildah, "rm", "-a"], capture_output=True, check=False)
            subprocess.run([*buildah, "rmi", "-a", "-f"], capture_output=True, check=False)
    finally:
        if hub:
            hub.stop()
        for registry in registries.values():
            registry.stop()
        shutil.rmtree(buildah_root, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)

    if runs:
        report(runs, args)
    if hub_runs:
        hub_report(hub_runs, args)
    return 0 if all(r.ok for r in [*runs, *hub_runs]) else 1


def report(runs: list[Run], args: argparse.Namespace) -> None:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.scenario, r.tool), []).append(r)
    floor = {
        scenario: median([r.seconds for r in group])
        for (scenario, tool), group in groups.items()
        if tool.startswith("floor")
    }
    total = args.shards * args.shard_mib
    pinning = "registry pinned to CPU 0, tool to CPU 1" if args.pin else f"{os.cpu_count()} CPUs shared"
    print(
        f"\n{args.shards} x {args.shard_mib} MiB shards ({total} MiB), concurrency {args.concurrency}, "
        f"one local docker-registry per tool, {pinning}; medians of the runs listed\n"
    )
    print(
        "| scenario | tool | runs (wall s) | median s | x floor | MiB received by registry | peak RSS MiB "
        "| tool CPU s | registry CPU s | ok |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for (scenario, tool), group in groups.items():
        seconds = median([r.seconds for r in group])
        ratio = seconds / floor[scenario] if floor.get(scenario) else float("nan")
        print(
            f"| {scenario} | {tool} | {' '.join(f'{r.seconds:.2f}' for r in group)} | {seconds:.2f} | "
            f"{ratio:.2f} | {median([r.bytes_received / MiB for r in group]):.1f} | "
            f"{max(r.peak_rss_kib for r in group) / 1024:.0f} | {median([r.cpu_seconds for r in group]):.1f} | "
            f"{median([r.registry_cpu_seconds for r in group]):.1f} | "
            f"{'yes' if all(r.ok for r in group) else 'FAILED'} {group[0].note} |"
        )
    for scenario in dict.fromkeys(r.scenario for r in runs):
        floor_runs = {r.repetition: r.seconds for r in groups.get((scenario, PAIRED[0]), [])}
        ours_runs = {r.repetition: r.seconds for r in groups.get((scenario, PAIRED[1]), [])}
        ratios = [ours_runs[i] / floor_runs[i] for i in sorted(ours_runs) if i in floor_runs]
        if ratios:
            print(
                f"{scenario}: ours / floor run by run: {' '.join(f'{x:.2f}' for x in ratios)}; "
                f"median {median(ratios):.2f}"
            )
    for (scenario, tool), group in groups.items():
        cold = groups.get(("cold", tool))
        if scenario == "warm" and cold:
            warm_s, cold_s = median([r.seconds for r in group]), median([r.seconds for r in cold])
            print(f"warm/cold {tool}: {100 * warm_s / cold_s:.1f}%")
    print(f"(full command output: {args.workdir or 'the work dir'}/bench.log with --keep)")


if __name__ == "__main__":
    sys.exit(main())

"""Kustomizations: which files each one pulls in, and its rendered output via `kubectl kustomize`.

kustomize reads what a kustomization names itself, so a kustomization that names a FIFO, a device, a
socket or a symlink loop is not rendered (the read would block or fail); a render is also bounded in
time and in output size, and its output is parsed within `RENDER_LIMITS`."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_platform.documents import RENDER_LIMITS, DocumentError, cut, decode, file_type, iter_yaml
from llm_platform.errors import ToolError

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_LIST_FIELDS_WITH_PATHS = ("resources", "bases", "components", "crds", "patchesStrategicMerge")


@dataclass
class Kustomization:
    dir: Path
    file: Path
    resource_files: set[Path] = field(default_factory=set)  # manifests it (transitively) renders
    patch_files: set[Path] = field(default_factory=set)  # partial objects: covered, never validated alone
    child_dirs: set[Path] = field(default_factory=set)  # kustomizations it includes (transitively)
    uses_helm: bool = False
    includes: dict[Path, tuple[str, int]] = field(default_factory=dict)  # direct: dir -> (field, index)


def real_path(path: Path) -> Path:
    """`path` with symlinks resolved as far as they go: never raises, not even on a symlink loop
    (Path.resolve does, with RuntimeError)."""
    return Path(os.path.realpath(path))


def _is_remote(ref: str) -> bool:
    return "://" in ref or ref.startswith(("github.com/", "git@", "gitlab.com/", "bitbucket.org/"))


def _local_refs(data: dict[str, Any]) -> tuple[list[tuple[str, int, str]], list[str]]:
    """(resource-like refs as (field, index, ref), patch-like refs) that are local paths."""
    resources: list[tuple[str, int, str]] = []
    patches: list[str] = []
    for key in _LIST_FIELDS_WITH_PATHS:
        refs = data.get(key)
        for i, ref in enumerate(refs if isinstance(refs, list) else []):
            if isinstance(ref, str) and not _is_remote(ref):
                if key == "patchesStrategicMerge":
                    patches.append(ref)
                else:
                    resources.append((key, i, ref))
    for ref in _list(data.get("configurations")):
        if isinstance(ref, str):
            patches.append(ref)
    for key in ("patches", "patchesJson6902", "replacements"):
        for p in _list(data.get(key)):
            if isinstance(p, dict) and isinstance(p.get("path"), str):
                patches.append(p["path"])
    for key in ("configMapGenerator", "secretGenerator"):
        for gen in _list(data.get(key)):
            if isinstance(gen, dict):
                for f in (
                    _list(gen.get("files"))
                    + _list(gen.get("envs"))
                    + ([gen["env"]] if isinstance(gen.get("env"), str) else [])
                ):
                    if isinstance(f, str):
                        patches.append(f.split("=", 1)[-1])
    return resources, patches


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def discover(kustomization_data: dict[Path, dict[str, Any]]) -> dict[Path, Kustomization]:
    """`kustomization_data`: kustomization file → its parsed content. Resolves references transitively."""
    by_dir: dict[Path, Kustomization] = {}
    for kfile, data in kustomization_data.items():
        k = Kustomization(dir=kfile.parent, file=kfile, uses_helm=bool(data.get("helmCharts")))
        resources, patches = _local_refs(data)
        for key, index, ref in resources:
            target = real_path(k.dir / ref)
            if target.is_dir():
                k.child_dirs.add(target)
                k.includes.setdefault(target, (key, index))
            else:
                k.resource_files.add(target)
        for ref in patches:
            k.patch_files.add(real_path(k.dir / ref))
        by_dir[real_path(k.dir)] = k
    # Close over included kustomizations so each knows every file it renders.
    for k in by_dir.values():
        seen: set[Path] = set()
        stack = list(k.child_dirs)
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            child = by_dir.get(d)
            if child is None:
                continue
            k.resource_files |= child.resource_files
            k.patch_files |= child.patch_files
            k.uses_helm |= child.uses_helm
            stack.extend(child.includes)
        k.child_dirs = seen
    return by_dir


def cycles(kusts: dict[Path, Kustomization]) -> list[list[Path]]:
    """Kustomization directories that include themselves, through others or directly: one cycle (its
    directories in inclusion order, starting at the least) per group of directories that reach each other.
    kustomize refuses every one of them; lint would render none (each is included by another)."""
    found: list[list[Path]] = []
    done: set[Path] = set()
    for start in sorted(kusts):
        k = kusts[start]
        if start in done or start not in k.child_dirs:
            continue
        group = {d for d in k.child_dirs if d in kusts and start in kusts[d].child_dirs} | {start}
        done |= group
        # The shortest way back to `start` inside the group (breadth first, in sorted order).
        previous: dict[Path, Path] = {}
        frontier, path = [start], None
        while frontier and path is None:
            nxt: list[Path] = []
            for d in frontier:
                for child in sorted(kusts[d].includes):
                    if child == start:
                        path = [d]
                        while path[-1] != start:
                            path.append(previous[path[-1]])
                        path.reverse()
                        break
                    if child in group and child not in previous and child != start:
                        previous[child] = d
                        nxt.append(child)
                if path is not None:
                    break
            frontier = nxt
        if path is not None:
            found.append(path)
    return found


def unreadable_inputs(
    k: Kustomization, kusts: dict[Path, Kustomization], regular: frozenset[Path] | set[Path] = frozenset()
) -> list[str]:
    """What kustomize would read for `k` and must not: files that are not regular files (a FIFO blocks
    the build for ever) or symlink loops, as `path (why)`. `regular`: paths already known to be regular
    files (the linted tree's), not looked at again; the kustomization files of `kusts` were read already."""
    candidates = (k.resource_files | k.patch_files) - regular
    for d in k.child_dirs:
        if d not in kusts:  # included, but its kustomization file was never read: kustomize would
            candidates |= {d / name for name in KUSTOMIZATION_NAMES}
    bad = []
    for path in sorted(candidates):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue  # kustomize reports what is missing
        except OSError as exc:
            bad.append(f"{path} ({'a symlink loop' if exc.errno == errno.ELOOP else exc.strerror})")
            continue
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            bad.append(f"{path} ({file_type(st.st_mode)})")
    return bad


RENDER_TIMEOUT_SECONDS = 300  # one `kustomize build` (Helm charts included): a stuck read ends here
# kubectl wraps kustomize errors in a klog line: `E1127 09:32:20.158935 12683 run.go:72] "command failed" err=<`
_KLOG = re.compile(r'^[EWIF]\d{4} [\d:.]+\s+\d+ \S+\] "command failed" err=<?\s*', re.MULTILINE)


@dataclass
class RenderResult:
    objects: list[dict[str, Any]]
    error: str | None = None
    refused: bool = False  # not rendered at all: `error` says why


def kustomize_command() -> list[str]:
    """A standalone `kustomize build` when on PATH (pin it to Argo CD's 5.8.x), else `kubectl kustomize`."""
    standalone = shutil.which("kustomize")
    if standalone is not None:
        return [standalone, "build"]
    path = shutil.which("kubectl")
    if path is None:
        raise ToolError("neither kustomize nor kubectl is on PATH: one is needed to render kustomizations")
    return [path, "kustomize"]


class Renderer:
    """Runs `kubectl kustomize` in background threads, so rendering overlaps the Python work
    (loading files, indexing CRDs) instead of the linter waiting on each kubectl start."""

    def __init__(self, build_options: list[str], timeout: float = RENDER_TIMEOUT_SECONDS) -> None:
        self._cmd: list[str] | None = (
            None  # resolved on first use: a tree without kustomizations needs neither
        )
        self._options = build_options
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2))
        self._pending: dict[Path, Future[RenderResult]] = {}
        self._refused: dict[Path, RenderResult] = {}

    def start(
        self,
        dirs: list[Path],
        kusts: dict[Path, Kustomization] | None = None,
        regular: frozenset[Path] | set[Path] = frozenset(),
    ) -> None:
        """Render `dirs`; with `kusts`, a kustomization naming an unreadable input is refused instead
        (`regular`: files known to be regular, see `unreadable_inputs`)."""
        for d in sorted(dirs):
            if d in self._pending or d in self._refused:
                continue
            bad = unreadable_inputs(kusts[d], kusts, regular) if kusts and d in kusts else []
            if bad:
                self._refused[d] = RenderResult(
                    [],
                    error=f"not rendered: kustomize would read {cut(', '.join(bad), 300)}",
                    refused=True,
                )
                continue
            if self._cmd is None:
                self._cmd = kustomize_command()
            self._pending[d] = self._pool.submit(self._one, d)

    def results(self) -> dict[Path, RenderResult]:
        """Results of everything started and not yet collected."""
        done = {d: f.result() for d, f in self._pending.items()}
        done.update(self._refused)
        self._pending.clear()
        self._refused.clear()
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _one(self, d: Path) -> RenderResult:
        assert self._cmd is not None
        # Output to a file, not a pipe: its size is checked before a byte of it is read.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                [*self._cmd, *self._options, str(d)], stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )
            # A timer kills a stuck build; a plain wait returns the moment it ends (wait(timeout) polls).
            fired = threading.Event()

            def kill() -> None:
                fired.set()
                proc.kill()

            timer = threading.Timer(self._timeout, kill)
            timer.start()
            try:
                proc.wait()
            finally:
                timer.cancel()
            if fired.is_set():
                return RenderResult([], error=f"did not finish within {self._timeout:g} s")
            if proc.returncode != 0:
                err.seek(0)
                stderr = err.read(64 * 1024).decode("utf-8", errors="replace")
                msg = " ".join(_KLOG.sub("", stderr.strip()).split()).removesuffix(">").strip()
                return RenderResult([], error=msg[:500] or f"{' '.join(self._cmd)} exited {proc.returncode}")
            size = os.fstat(out.fileno()).st_size
            if size > RENDER_LIMITS.max_bytes:
                return RenderResult(
                    [],
                    error=f"kustomize output is {size:,} bytes, over the limit of {RENDER_LIMITS.max_bytes:,}",
                )
            out.seek(0)
            raw = out.read()
        try:
            text = decode(raw, f"kustomize build {d}")
            docs = [
                doc.data
                for doc in iter_yaml(text, source="kustomize output", limits=RENDER_LIMITS)
                if isinstance(doc.data, dict)
            ]
        except DocumentError as exc:
            return RenderResult([], error=f"kustomize output is not usable YAML: {exc}")
        return RenderResult(docs)

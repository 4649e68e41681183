"""Kustomizations: which files each one pulls in, and its rendered output via `kubectl kustomize`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_platform.errors import ToolError

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_LIST_FIELDS_WITH_PATHS = ("resources", "bases", "components", "crds", "patchesStrategicMerge")


@dataclass
class Kustomization:
    dir: Path
    file: Path
    resource_files: set[Path] = field(default_factory=set)  # manifests it (transitively) renders
    patch_files: set[Path] = field(default_factory=set)  # partial objects: covered, never validated alone
    child_dirs: set[Path] = field(default_factory=set)  # kustomizations it includes
    uses_helm: bool = False


def _is_remote(ref: str) -> bool:
    return "://" in ref or ref.startswith(("github.com/", "git@", "gitlab.com/", "bitbucket.org/"))


def _local_refs(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(resource-like refs, patch-like refs) that are local paths."""
    resources: list[str] = []
    patches: list[str] = []
    for key in _LIST_FIELDS_WITH_PATHS:
        for ref in data.get(key) or []:
            if isinstance(ref, str) and not _is_remote(ref):
                (patches if key == "patchesStrategicMerge" else resources).append(ref)
    for ref in data.get("configurations") or []:
        if isinstance(ref, str):
            patches.append(ref)
    for key in ("patches", "patchesJson6902", "replacements"):
        for p in data.get(key) or []:
            if isinstance(p, dict) and isinstance(p.get("path"), str):
                patches.append(p["path"])
    for key in ("configMapGenerator", "secretGenerator"):
        for gen in data.get(key) or []:
            if isinstance(gen, dict):
                for f in (
                    list(gen.get("files") or [])
                    + list(gen.get("envs") or [])
                    + ([gen["env"]] if isinstance(gen.get("env"), str) else [])
                ):
                    if isinstance(f, str):
                        patches.append(f.split("=", 1)[-1])
    return resources, patches


def discover(kustomization_data: dict[Path, dict[str, Any]]) -> dict[Path, Kustomization]:
    """`kustomization_data`: kustomization file → its parsed content. Resolves references transitively."""
    by_dir: dict[Path, Kustomization] = {}
    for kfile, data in kustomization_data.items():
        k = Kustomization(dir=kfile.parent, file=kfile, uses_helm=bool(data.get("helmCharts")))
        resources, patches = _local_refs(data)
        for ref in resources:
            target = (k.dir / ref).resolve()
            if target.is_dir():
                k.child_dirs.add(target)
            else:
                k.resource_files.add(target)
        for ref in patches:
            k.patch_files.add((k.dir / ref).resolve())
        by_dir[k.dir.resolve()] = k
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
            stack.extend(child.child_dirs)
        k.child_dirs = seen
    return by_dir


_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# kubectl wraps kustomize errors in a klog line: `E1127 09:32:20.158935 12683 run.go:72] "command failed" err=<`
_KLOG = re.compile(r'^[EWIF]\d{4} [\d:.]+\s+\d+ \S+\] "command failed" err=<?\s*', re.MULTILINE)


@dataclass
class RenderResult:
    objects: list[dict[str, Any]]
    error: str | None = None


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

    def __init__(self, build_options: list[str]) -> None:
        self._cmd: list[str] | None = (
            None  # resolved on first use: a tree without kustomizations needs neither
        )
        self._options = build_options
        self._pool = ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2))
        self._pending: dict[Path, Future[RenderResult]] = {}

    def start(self, dirs: list[Path]) -> None:
        if dirs and self._cmd is None:
            self._cmd = kustomize_command()
        for d in sorted(dirs):
            if d not in self._pending:
                self._pending[d] = self._pool.submit(self._one, d)

    def results(self) -> dict[Path, RenderResult]:
        """Results of everything started and not yet collected."""
        done = {d: f.result() for d, f in self._pending.items()}
        self._pending.clear()
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _one(self, d: Path) -> RenderResult:
        assert self._cmd is not None
        proc = subprocess.run(
            [*self._cmd, *self._options, str(d)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            msg = " ".join(_KLOG.sub("", proc.stderr.strip()).split()).removesuffix(">").strip()
            return RenderResult([], error=msg[:500] or f"{' '.join(self._cmd)} exited {proc.returncode}")
        try:
            docs = [doc for doc in yaml.load_all(proc.stdout, Loader=_Loader) if isinstance(doc, dict)]
        except yaml.YAMLError as exc:
            return RenderResult([], error=f"kustomize output is not YAML: {exc}")
        return RenderResult(docs)

"""The digest cache: content sha256 and layer digest of local files, keyed by file identity, so that a
file is hashed once, by whichever build or publish reads it first.

A publish that knows a layer's digest from here streams the file without hashing it: the registry checks
every blob against its digest on commit, so a stale entry ends in a rejected upload, never in a wrong image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Sequence
from pathlib import Path

from llm_platform.cache_root import cache_root
from llm_platform.documents import CACHE_LIMITS, DocumentError, load_json_file
from llm_platform.logs import get_logger
from llm_platform.modelcar import tar_layer
from llm_platform.modelcar.image import ImagePlan, LayerMembers, layer_members
from llm_platform.modelcar.source import ModelFile, ModelSource, file_identity
from llm_platform.oci import atomic_write

log = get_logger("modelcar.digest_cache")


def default_cache_dir() -> Path:
    return Path(cache_root())


class LayerDigestCache:
    """Facts learnt by reading files, so the next build or publish need not read them again.

    `files`: local file identity (device, inode, size, mtime, ctime, path) → content sha256; ctime changes on
    every write, so an edited file never matches. `layers`: (path under /models, size, content sha256) of each
    file of a layer → layer digest, which is a pure function of those (headers are fixed), whatever the
    files' origin.
    """

    MAX_ENTRIES = 20_000

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / "layer-digests.json" if directory else None
        self.files: dict[str, str] = {}
        self.layers: dict[str, str] = {}
        self.paths: dict[str, str] = {}  # real path -> file key when last published: tells "edited since"
        self._forgotten: set[tuple[str, str]] = set()  # (table, key) removed here: not merged back on save
        if self.path and self.path.is_file():
            try:
                data = load_json_file(self.path, CACHE_LIMITS)
                self.files = dict(data.get("files", {}))
                self.layers = dict(data.get("layers", {}))
                self.paths = dict(data.get("paths", {}))
            except (DocumentError, ValueError, TypeError, AttributeError) as exc:
                log.warning("ignoring unreadable digest cache %s (%s)", self.path, exc)

    @staticmethod
    def file_key(path: Path) -> str | None:
        """The file's identity (`source.file_identity`, the one definition stable reads compare too)."""
        return file_identity(path)

    @staticmethod
    def layer_key(files: Sequence[ModelFile]) -> str:
        """`path\0size\0sha256`, of each file of the layer, joined by newlines: a model path holds no control
        character, so no two layers share a key. A layer of one file has the key it had before layers were
        shared, so existing caches stay valid."""
        return "\n".join(f"{f.path}\0{f.size}\0{f.known_sha256 or ''}" for f in files)

    def forget(self, local: Path | None, layer_key: str) -> None:
        """Drop what is recorded for a file (its identity, if local) and for its layer."""
        doomed = [("layers", layer_key)]
        if local is not None:
            real = os.path.realpath(local)
            doomed += [("paths", real)] + [("files", key) for key in self.files if key.endswith(":" + real)]
        for table, key in doomed:
            getattr(self, table).pop(key, None)
            self._forgotten.add((table, key))

    def save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            merged = LayerDigestCache(self.path.parent)
            merged.files.update(self.files)
            merged.layers.update(self.layers)
            merged.paths.update(self.paths)
            for table, key in self._forgotten:
                getattr(merged, table).pop(key, None)
            data = {
                "files": dict(list(merged.files.items())[-self.MAX_ENTRIES :]),
                "layers": dict(list(merged.layers.items())[-self.MAX_ENTRIES :]),
                "paths": dict(list(merged.paths.items())[-self.MAX_ENTRIES :]),
            }
            atomic_write(self.path, json.dumps(data).encode())
        except OSError as exc:  # a cache is an optimisation: never fail a publish over it
            log.warning("could not update digest cache %s: %s", self.path, exc.strerror)


def edited_since_seen(source: ModelSource, cache: LayerDigestCache) -> set[str]:
    """Paths of local files the cache saw at another identity (size, mtime, ctime, inode): rewritten since."""
    edited: set[str] = set()
    if source.kind != "local":
        return edited
    for model_file in source.files:
        local = Path(source.location) / model_file.path
        before = cache.paths.get(os.path.realpath(local))
        if before is not None and before != cache.file_key(local):
            edited.add(model_file.path)
    return edited


def known_digests(
    source: ModelSource, cache: LayerDigestCache, groups: Sequence[Sequence[ModelFile]]
) -> dict[LayerMembers, tuple[str, int]]:
    """Fill in content sha256s of unchanged local files; the `reuse` entries the cache knows for the layers of
    `groups` (the files of each layer)."""
    for model_file in source.files:
        if model_file.known_sha256 is None and source.kind == "local":
            key = cache.file_key(Path(source.location) / model_file.path)
            if key and key in cache.files:
                model_file.known_sha256 = cache.files[key]
    reuse: dict[LayerMembers, tuple[str, int]] = {}
    for files in groups:
        members = layer_members(files)
        if members is None:
            continue
        digest = cache.layers.get(cache.layer_key(files))
        if digest:
            reuse[members] = (digest, tar_layer.layer_size([(f.path, f.size) for f in files]))
    return reuse


def identities(source: ModelSource, cache: LayerDigestCache) -> dict[str, str | None]:
    """Identity of every local file before it is read: what `remember` compares with afterwards."""
    if source.kind != "local":
        return {}
    return {f.path: cache.file_key(Path(source.location) / f.path) for f in source.files}


def remember(
    plan: ImagePlan,
    source: ModelSource,
    cache: LayerDigestCache,
    before: dict[str, str | None],
    *,
    stale: Collection[str] = (),
) -> None:
    """Record what the run learnt; a local file whose identity changed while it was read is left out (and so is
    the digest of its layer), and the entries of a layer with a `stale` file (its recorded digest proved wrong)
    are dropped, with those of all its files."""
    for layer in plan.model_layers:
        if any(f.path in stale for f in layer.files):
            layer_key = cache.layer_key(layer.files)
            for model_file in layer.files:
                cache.forget(
                    Path(source.location) / model_file.path if source.kind == "local" else None, layer_key
                )
            continue
        if not layer.known:
            continue
        unchanged = True
        for model_file in layer.files if source.kind == "local" else ():
            local = Path(source.location) / model_file.path
            key = cache.file_key(local)
            if key is None or key != before.get(model_file.path):
                unchanged = False
                continue
            cache.files[key] = model_file.sha256  # known (layer.known): nothing is read
            cache.paths[os.path.realpath(local)] = key
        if unchanged:
            cache.layers[cache.layer_key(layer.files)] = layer.digest

"""The layer budget of a modelcar: the image never has more layers than `max_layers`, the base image's
included. Container runtimes cap the layers of an image they run (Docker and older containers/storage at
128, newer containers/storage at about 500), and a pod whose image is over the cap pulls, then fails to
start.

Up to the budget every model file has a layer of its own. Above it, the two smallest layers (by bytes,
ties by path) become one until the count fits. A file is merged only while it is among the two smallest,
so the largest files (ties: the first by path) keep a layer each, and the files that share are the
smallest ones, in layers no larger than they need to be. The grouping depends on paths and sizes only,
never on contents or the order a filesystem lists the files in: a file whose bytes change leaves every
other layer as it was, for reuse.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from llm_platform.errors import InputError
from llm_platform.modelcar.source import ModelFile

# One under Docker's and older containers/storage's cap of 128, the lowest runtimes in use have.
DEFAULT_MAX_LAYERS = 127


def model_layer_slots(max_layers: int, base_layers: int, *, what: str) -> int:
    """How many layers the model files may take; an InputError naming `what` when the base leaves none."""
    slots = max_layers - base_layers
    if slots < 1:
        plural = "" if base_layers == 1 else "s"
        raise InputError(
            f"{what} {max_layers}: the base image alone has {base_layers} layer{plural}; give at least "
            f"{base_layers + 1} (the model files need one)"
        )
    return slots


def _path_key(model_file: ModelFile) -> bytes:
    return model_file.path.encode("utf-8")  # the order ModelSource sorts files in


def group_files(files: Sequence[ModelFile], slots: int) -> list[list[ModelFile]]:
    """The model files of each layer, at most `slots` layers: each layer's files sorted by path, the layers
    by their first path. Up to `slots` files, one file per layer (the image as it has always been)."""
    if slots < 1:
        raise ValueError(f"slots must be at least 1, not {slots}")
    if len(files) <= slots:
        return [[f] for f in sorted(files, key=_path_key)]
    # Rank 0 is the largest file (ties: the first by path). A layer's heap key is (bytes, -best rank of its
    # files): unique, so two layers never compare their file lists, and of equal sizes the later file by
    # path is merged first.
    ranked = sorted(files, key=lambda f: (-f.size, _path_key(f)))
    heap = [(f.size, -rank, [f]) for rank, f in enumerate(ranked)]
    heapq.heapify(heap)
    while len(heap) > slots:
        size_a, key_a, files_a = heapq.heappop(heap)
        size_b, key_b, files_b = heapq.heappop(heap)
        heapq.heappush(heap, (size_a + size_b, max(key_a, key_b), files_a + files_b))
    layers = [sorted(layer_files, key=_path_key) for _, _, layer_files in heap]
    return sorted(layers, key=lambda layer_files: _path_key(layer_files[0]))

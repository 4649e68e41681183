"""The phase `build` and `publish` share: load the spec, pick the platform, load the base, open the source,
consult the digest cache, and plan the image. Nothing is read from the model files here.

`build` then writes the plan as a layout; `publish` hands it to the push phase (`modelcar.push`). Both end
with `PreparedModelcar.remember`, which records what reading the files taught in the digest cache.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from llm_platform.logs import get_logger
from llm_platform.modelcar import digest_cache
from llm_platform.modelcar.base_image import BaseImage, Platform, load_base, parse_platform
from llm_platform.modelcar.image import ImagePlan, Reuse, plan_image
from llm_platform.modelcar.layer_budget import DEFAULT_MAX_LAYERS, group_files, model_layer_slots
from llm_platform.modelcar.source import ModelFile, ModelSource, open_source
from llm_platform.modelcar.spec import ModelcarSpec, load_spec, spec_field_line
from llm_platform.network import NetworkBounds

log = get_logger("modelcar.prepare")


class SourceOptions(BaseModel):
    """What an image is made of: the spec, where its files come from, the base, the platform, the cache."""

    model_config = ConfigDict(frozen=True)

    spec: Path
    source_dir: Path | None = None  # None: the spec's Hugging Face repo
    base: str | None = None  # overrides the spec's base: a digest-pinned reference or oci:DIR[:TAG]
    platform: str = "linux/amd64"
    hf_token: SecretStr | None = None  # None: $HF_TOKEN
    cache_dir: Path | None = None  # the digest cache; None: none is read or written
    max_layers: int | None = None  # layers at most, base included; None: image.max_layers, else 127
    timeout: float | None = None  # the Hub's stall bound, s (llm_platform.network); None: env or 60


@dataclass
class PreparedModelcar:
    """A spec with its base and source opened, ready to be planned (and re-planned with more reuse)."""

    spec: ModelcarSpec
    platform: Platform
    base_ref: str
    base: BaseImage
    source: ModelSource
    cache: digest_cache.LayerDigestCache
    max_layers: int  # the layer budget, base included, checked against the base
    layer_groups: list[list[ModelFile]]  # the files of each model layer (`layer_budget.group_files`)
    _identities: dict[str, str | None] = field(repr=False)

    @property
    def uses_cache(self) -> bool:
        return self.cache.path is not None

    def plan(self, reuse: Reuse | None = None) -> ImagePlan:
        """The image plan; layer digests come from the digest cache and from `reuse` (a previous image)."""
        known = {**digest_cache.known_digests(self.source, self.cache, self.layer_groups), **(reuse or {})}
        return plan_image(
            self.spec,
            self.source,
            self.base,
            platform=str(self.platform),
            reuse=known,
            max_layers=self.max_layers,
        )

    def edited_files(self) -> set[str]:
        """Local files rewritten since the digest cache last saw them."""
        return digest_cache.edited_since_seen(self.source, self.cache) if self.uses_cache else set()

    def remember(self, plan: ImagePlan, *, stale: Collection[str] = ()) -> None:
        """Record in the digest cache what reading the files taught; drop the records `stale` proved wrong."""
        if self.uses_cache:
            digest_cache.remember(plan, self.source, self.cache, self._identities, stale=stale)
            self.cache.save()


def _layer_budget(options: SourceOptions, spec: ModelcarSpec) -> tuple[int, str]:
    """The layer budget and what to call it in an error: the flag, the spec's field (file and line), or the
    default."""
    if options.max_layers is not None:
        return options.max_layers, "--max-layers"
    if spec.image.max_layers is not None:
        line = spec_field_line(options.spec, ("image", "max_layers"))
        return spec.image.max_layers, f"{options.spec}:{line}: image.max_layers"
    return DEFAULT_MAX_LAYERS, "--max-layers (default)"


def prepare(options: SourceOptions, *, stream_hub: bool = False) -> PreparedModelcar:
    """`stream_hub`: hub files are read straight from the hub each time, never into the hub cache (publish)."""
    spec = load_spec(options.spec)
    platform = parse_platform(options.platform)
    base_ref = options.base or spec.image.base
    bounds = NetworkBounds.from_timeout(options.timeout)
    base = load_base(base_ref, platform, bounds=bounds)
    max_layers, what = _layer_budget(options, spec)
    slots = model_layer_slots(max_layers, len(base.layers), what=what)  # before the source is listed
    token = options.hf_token.get_secret_value() if options.hf_token else None
    source = open_source(spec, source_dir=options.source_dir, token=token, bounds=bounds, stream=stream_hub)
    cache = digest_cache.LayerDigestCache(options.cache_dir)
    layer_groups = group_files(source.files, slots)
    log.info(
        "%s: %d files in %d model layers from %s on %s (%s)",
        spec.name,
        len(source.files),
        len(layer_groups),
        source.location,
        base_ref,
        platform,
    )
    return PreparedModelcar(
        spec=spec,
        platform=platform,
        base_ref=base_ref,
        base=base,
        source=source,
        cache=cache,
        max_layers=max_layers,
        layer_groups=layer_groups,
        _identities=digest_cache.identities(source, cache),
    )

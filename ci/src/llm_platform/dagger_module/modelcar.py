"""The `Modelcar` object (what `build-modelcar` returns: chain `publish`, `layout`, `digest`) and the
modelcar steps `build-modelcar`, `Modelcar.publish` and `deploy` share.

Validating the spec runs the core in the module's own process, so a bad spec fails before any
container starts; the build and the publish run `llm-platform modelcar build|publish` in the toolbox.
"""

# No `from __future__ import annotations` here: dagger-io 0.21.11 reads the descriptions of object
# fields (Annotated[..., Doc(...)]) from the evaluated annotations, and a string annotation loses them.
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated

import dagger
from dagger import Doc, field, function, object_type

from llm_platform.dagger_module.commands import (
    HF_TOKEN_ENV,
    REGISTRY_PASSWORD_ENV,
    modelcar_build_argv,
    modelcar_publish_argv,
)
from llm_platform.dagger_module.containers import CACHE_BUSTER_ENV, WORK, cache_buster, toolbox
from llm_platform.dagger_module.models import PublishedModelcar, Signing
from llm_platform.signing import SIGNING_KEY_ENV, SIGNING_KEY_PASSWORD_ENV

if TYPE_CHECKING:
    from llm_platform.modelcar.publish import PublishResult


@object_type
class Modelcar:
    """A modelcar from one spec: an OCI image with the weights under /models; chain `publish`, `layout`, `digest`."""

    name: Annotated[str, Doc("Spec name (modelcars/<name>.yaml)")] = field()
    repository: Annotated[str, Doc("The spec's image.repository: the default publish target")] = field()
    # State carried between chained calls (serialised as object IDs), not exposed as API fields.
    spec: dagger.File
    source_dir: dagger.Directory | None
    hf_token: dagger.Secret | None
    max_layers: int | None  # --max-layers of the build and the publish (None: the spec's, else 127)
    tools: dagger.Container
    # "" when the spec pins a commit (a build is then a pure function of its inputs and may come from
    # the layer cache); otherwise a value fixed when the object was made, so a branch is re-resolved.
    freshness: str

    if TYPE_CHECKING:
        # object_type generates this __init__ (it makes a dataclass); mypy does not apply the SDK's
        # dataclass_transform, so the signature is spelled out for it. A test keeps the two in step.
        def __init__(
            self,
            *,
            name: str,
            repository: str,
            spec: dagger.File,
            source_dir: dagger.Directory | None,
            hf_token: dagger.Secret | None,
            max_layers: int | None,
            tools: dagger.Container,
            freshness: str,
        ) -> None: ...

    def with_inputs(self) -> dagger.Container:
        """The toolbox with the spec, the local model files and the HF token in place."""
        ctr = self.tools.with_file(self.spec_path(), self.spec)
        if self.freshness:
            ctr = ctr.with_env_variable(CACHE_BUSTER_ENV, self.freshness)
        if self.source_dir is not None:
            ctr = ctr.with_directory(f"{WORK}/source", self.source_dir)
        if self.hf_token is not None:
            ctr = ctr.with_secret_variable(HF_TOKEN_ENV, self.hf_token)
        return ctr

    def spec_path(self) -> str:
        return f"{WORK}/modelcars/{self.name}.yaml"

    def source_path(self) -> str | None:
        return None if self.source_dir is None else f"{WORK}/source"

    def layout_path(self) -> str:
        return f"{WORK}/out/{self.name}"

    def build_exec(self) -> dagger.Container:
        """The build exec: writes the layout and prints the build result (BuildResult JSON)."""
        argv = modelcar_build_argv(self.spec_path(), self.layout_path(), self.source_path(), self.max_layers)
        return self.with_inputs().with_exec(argv)

    @function
    def layout(self) -> dagger.Directory:
        """The image as an OCI layout (oci-layout, index.json, blobs/sha256/...), e.g. to `export`."""
        return self.build_exec().directory(self.layout_path())

    @function
    async def digest(self) -> str:
        """The manifest digest (sha256:...) of the image; `publish` pushes exactly this manifest."""
        from llm_platform.modelcar.build import BuildResult

        return BuildResult.model_validate_json(await self.build_exec().stdout()).manifest_digest

    @function(cache="never")  # type: ignore[call-overload]  # dagger-io 0.21.11 overloads omit `cache`
    async def publish(
        self,
        address: Annotated[
            str | None, Doc("Target REGISTRY/REPOSITORY[:TAG] (default: the spec's image.repository)")
        ] = None,
        username: Annotated[str | None, Doc("Registry user, e.g. _json_key or oauth2accesstoken")] = None,
        password: Annotated[
            dagger.Secret | None, Doc("Registry password or token, e.g. env://REGISTRY_PASSWORD")
        ] = None,
        signing_key: Annotated[
            dagger.Secret | None,
            Doc(
                "Sign the image and attach its attestations with this PEM private key, e.g. env://SIGNING_KEY"
            ),
        ] = None,
        signing_key_password: Annotated[
            dagger.Secret | None, Doc("The signing key's password, e.g. env://SIGNING_KEY_PASSWORD")
        ] = None,
    ) -> str:
        """Push the image (blobs the registry has are skipped) and return the verified REPOSITORY@sha256:...;
        with a signing key, also its signature, OMS bundle, provenance and ModelPack manifest."""
        signing = Signing(key=signing_key, password=signing_key_password) if signing_key else None
        return (await publish_modelcar(self, address, username, password, signing)).reference


async def modelcar_from_spec(
    spec: dagger.File,
    source_dir: dagger.Directory | None,
    hf_token: dagger.Secret | None,
    max_layers: int | None = None,
) -> Modelcar:
    from llm_platform.modelcar.spec import load_spec_text

    # Named as in the repository, so errors read `modelcars/<file>:<line>: <field>: ...`.
    source_name = f"modelcars/{PurePosixPath(await spec.name()).name}"
    parsed = load_spec_text(await spec.contents(), source_name=source_name)
    return Modelcar(
        name=parsed.name,
        repository=parsed.image.repository,
        spec=spec,
        source_dir=source_dir,
        hf_token=hf_token,
        max_layers=max_layers,
        tools=toolbox(),
        freshness="" if parsed.huggingface.pins_commit else cache_buster(),
    )


async def publish_modelcar(
    car: Modelcar,
    address: str | None,
    username: str | None,
    password: dagger.Secret | None,
    signing: Signing | None = None,
) -> "PublishResult":
    """Run the publish in the toolbox; its typed result (reference, digest, tags, bytes uploaded, ...)."""
    from llm_platform.modelcar.publish import PublishResult
    from llm_platform.registry.auth import check_credential_pair

    check_credential_pair(username, password is not None, password_flag="--password")
    ctr = car.with_inputs()
    if password is not None:
        ctr = ctr.with_secret_variable(REGISTRY_PASSWORD_ENV, password)
    if signing is not None:
        # The publish command signs when $LLM_PLATFORM_SIGNING_KEY holds a key (the PEM text).
        ctr = ctr.with_secret_variable(SIGNING_KEY_ENV, signing.key)
        if signing.password is not None:
            ctr = ctr.with_secret_variable(SIGNING_KEY_PASSWORD_ENV, signing.password)
    argv = modelcar_publish_argv(
        car.spec_path(), address or car.repository, car.source_path(), username, car.max_layers
    )
    out = await ctr.with_env_variable(CACHE_BUSTER_ENV, cache_buster()).with_exec(argv).stdout()
    return PublishResult.model_validate_json(out)


async def publish_with_commit(
    car: Modelcar, username: str | None, password: dagger.Secret | None, signing: Signing | None = None
) -> PublishedModelcar:
    """Publish to the spec's repository; the result names the image and the HF commit it was built from."""
    result = await publish_modelcar(car, None, username, password, signing)
    return PublishedModelcar(name=car.name, image=result.reference, hf_commit=result.hf_commit)

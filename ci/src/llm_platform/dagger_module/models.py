"""The values the Dagger module passes between its steps and returns: pydantic models and one dataclass.

No dagger at runtime: `CloudAccess`, `Signing` and `RegistryAccess` name `dagger.Secret` in annotations only, for type checkers.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import dagger


class PublishedModelcar(BaseModel):
    name: str
    image: str = Field(description="REPOSITORY@sha256:<hex> as pushed and verified")
    hf_commit: str = Field(description="Hugging Face commit the weights came from")


@dataclasses.dataclass(frozen=True)
class CloudAccess:
    """How tofu reaches the cloud: the project and one of a credentials JSON or a short-lived token."""

    project_id: str | None = None
    credentials: dagger.Secret | None = None
    access_token: dagger.Secret | None = None


@dataclasses.dataclass(frozen=True)
class Signing:
    """The key `publish` signs with (its PEM text) and the key's password, as secrets."""

    key: dagger.Secret
    password: dagger.Secret | None = None


@dataclasses.dataclass(frozen=True)
class RegistryAccess:
    """The registry credentials a bump verifies the image with (the publish step's)."""

    username: str | None = None
    password: dagger.Secret | None = None


class BumpRequest(BaseModel):
    model: str
    ref: str
    hf_commit: str | None = None


class DeploySummary(BaseModel):
    """What `deploy` did, step by step; returned as JSON."""

    env: str
    tofu_outputs: dict[str, Any]
    published: list[PublishedModelcar]
    unchanged: list[str] = Field(description="modelcars whose lock already matches their spec")
    lint: str = Field(description="the lint report (clean: lint fails the deploy otherwise)")
    install: str = Field(default="", description="with --install: the JSON results of `cluster install`")
    bump_commits: list[str] = Field(description="per bump: the commit it made, or `unchanged`")
    pushed: bool

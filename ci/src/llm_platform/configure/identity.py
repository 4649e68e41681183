"""A fork's identity, as the options of `configure` give it: validated once, at the boundary.

Each field is checked as the option it comes from, and a bad value is one InputError naming that option
(`--project-id: ...`). The repository URL is taken as written (https or ssh), never normalised, and one
that carries credentials is refused without echoing them: Argo CD reads repository credentials from a
Secret, and an Application's repoURL is readable by everyone who can read the tree.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from llm_platform.configure import placeholders
from llm_platform.errors import GitError, InputError, url_without_credentials

# GCP's rule for project ids: 6-30 characters, lowercase letters, digits and hyphens, starting with a
# letter and not ending with a hyphen.
_PROJECT_ID_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
# A GCP region (us-central1, europe-west4) or an Artifact Registry multi-region (us, europe, asia).
_REGION_RE = re.compile(r"^[a-z]+(?:-[a-z]+[0-9]+)?$")
# A branch, tag or commit as git spells them; no leading '-', no `..`, nothing YAML would need quoted for.
_REVISION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}$")
# REGISTRY[:PORT]/PATH as OCI repository names are written (lowercase path components).
_REGISTRY_RE = re.compile(
    r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+$"
)
# scp-like ssh: USER@HOST:PATH (git@github.com:org/repo.git); USER@ there is a login name, not a secret.
_SCP_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!/)[^\s:]\S*$")

_FLAGS = {
    "repo_url": "--repo-url",
    "revision": "--revision",
    "project_id": "--project-id",
    "region": "--region",
    "registry": "--registry",
}


def _refuse_marker(value: str, what: str) -> None:
    if placeholders.MARKER in value:
        raise ValueError(
            f"{value!r} contains the template's placeholder {placeholders.MARKER!r}; give your fork's own {what}"
        )


def check_repo_url(url: str) -> str:
    """`url` if it is an https or ssh git URL without credentials; ValueError (without the secret) if not."""
    if not url or any(c.isspace() for c in url):
        raise ValueError("expected a git URL without white space")
    if url.startswith(("https://", "ssh://")):
        parts = urlsplit(url)
        # https://TOKEN@host and https://user:TOKEN@host carry a secret; ssh://git@host only a login name.
        if parts.password is not None or (parts.scheme == "https" and parts.username is not None):
            raise ValueError(
                f"the URL carries credentials ({url_without_credentials(url)} with a user:password@ part); "
                "give it without them: Argo CD takes repository credentials from a Secret"
            )
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError(f"{url!r} names no repository (expected https://HOST/OWNER/REPO.git)")
        if parts.query or parts.fragment:
            raise ValueError(f"{url!r} has a query or fragment; give the repository's clone URL")
    elif not _SCP_RE.match(url):
        raise ValueError(
            f"{url_without_credentials(url)!r} is not an https or ssh git URL "
            "(https://HOST/OWNER/REPO.git, ssh://git@HOST/OWNER/REPO.git or git@HOST:OWNER/REPO.git)"
        )
    _refuse_marker(url, "repository URL")
    return url


class Identity(BaseModel):
    """What `configure` writes in place of the placeholders. `project_id` may be None when no placeholder of
    the project is left to set (the tree is configured already, or `--registry` covers the images)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo_url: str
    revision: str = placeholders.REVISION
    project_id: str | None = None
    region: str = placeholders.REGION
    registry: str | None = None  # None: default_registry(region, project_id), when the project is known

    @field_validator("repo_url")
    @classmethod
    def _repo_url(cls, value: str) -> str:
        return check_repo_url(value)

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str) -> str:
        if not _REVISION_RE.match(value) or ".." in value or value.endswith((".", "/", ".lock")):
            raise ValueError(f"{value!r} is not a branch, tag or commit (letters, digits, . _ / -)")
        return value

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _PROJECT_ID_RE.match(value):
            raise ValueError(
                f"{value!r} is not a GCP project id: 6-30 characters, lowercase letters, digits and hyphens, "
                "starting with a letter, not ending with a hyphen"
            )
        _refuse_marker(value, "GCP project id")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION_RE.match(value):
            raise ValueError(f"{value!r} is not a GCP region (e.g. us-central1, europe-west4)")
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _REGISTRY_RE.match(value):
            raise ValueError(
                f"{value!r} is not a repository prefix REGISTRY/PATH (e.g. europe-west4-docker.pkg.dev/"
                "my-project/modelcars), without scheme, tag or trailing slash"
            )
        _refuse_marker(value, "registry")
        return value

    @property
    def modelcar_registry(self) -> str | None:
        """The prefix the modelcar repositories move to, when known."""
        if self.registry is not None:
            return self.registry
        if self.project_id is None:
            return None
        return placeholders.default_registry(self.region, self.project_id)

    @classmethod
    def from_options(cls, **options: str | None) -> Identity:
        """The identity from the command's options (None: not given), each error naming its option."""
        given = {key: value for key, value in options.items() if value is not None}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            raise InputError(f"{_FLAGS.get(field, field)}: {message}") from None


def origin_url(root: Path) -> str:
    """The URL of the checkout's `origin` remote: the default of --repo-url."""
    from llm_platform.bump.git import Git

    try:
        proc = Git(root).run("remote", "get-url", "origin", check=False)
    except GitError as exc:
        raise InputError(f"--repo-url: not given, and git could not be asked for origin: {exc}") from None
    url = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or not url:
        raise InputError(
            f"--repo-url: not given, and {root} has no `origin` remote to take it from: "
            "pass --repo-url https://github.com/OWNER/REPO.git"
        )
    try:
        return check_repo_url(url)
    except ValueError as exc:
        raise InputError(f"--repo-url (default: the URL of remote origin): {exc}") from None

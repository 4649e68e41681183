"""`cluster repo-credential`: the Argo CD repository Secret for the fork's (private) git repository:
`argocd.argoproj.io/secret-type: repository` with `url` and either a token for HTTPS (`GIT_TOKEN`, as
username/password) or an SSH private key from a file. Updated only when what the cluster holds differs;
its values are never printed (the dry run shows where each comes from, not the value)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from llm_platform.cluster.bootstrap import ARGOCD_NAMESPACE
from llm_platform.cluster.kube import Kube
from llm_platform.documents import CONFIG_LIMITS, read_bytes
from llm_platform.errors import InputError, url_without_credentials

GIT_TOKEN_ENV = "GIT_TOKEN"
SECRET_TYPE_LABEL = "argocd.argoproj.io/secret-type"
_SSH_URL = re.compile(r"^(ssh://|[\w.-]+@[\w.-]+:)")


class RepoCredential(BaseModel):
    url: str
    username: str | None = None
    password: SecretStr | None = None
    ssh_private_key: SecretStr | None = None
    source: str  # where the secret value comes from, for the dry run: $GIT_TOKEN or the key file


class RepoCredentialResult(BaseModel):
    step: str = "repo-credential"
    secret: str  # namespace/name
    url: str
    changed: bool
    source: str


def credential(
    url: str, *, ssh_key_file: Path | None = None, env: dict[str, str] | None = None
) -> RepoCredential:
    """The credential for `url`: an SSH key (ssh:// or scp-like URLs, --ssh-key-file) or $GIT_TOKEN (HTTPS).
    A URL carrying credentials itself is refused: they would land in the Secret's `url` and in logs."""
    env = dict(os.environ) if env is None else env
    if url_without_credentials(url) != url:
        raise InputError("--repo-url: the URL carries credentials: give them as $GIT_TOKEN or --ssh-key-file")
    if _SSH_URL.match(url) or ssh_key_file is not None:
        if ssh_key_file is None:
            raise InputError(
                f"--ssh-key-file: {url} is an SSH URL: give the private key file Argo CD should use"
            )
        key = read_bytes(ssh_key_file, CONFIG_LIMITS, source=str(ssh_key_file)).decode(
            "utf-8", errors="replace"
        )
        if "PRIVATE KEY" not in key:
            raise InputError(f"--ssh-key-file: {ssh_key_file} is not a private key (no PRIVATE KEY block)")
        return RepoCredential(url=url, ssh_private_key=SecretStr(key), source=str(ssh_key_file))
    token = env.get(GIT_TOKEN_ENV, "")
    if not token:
        raise InputError(
            f"${GIT_TOKEN_ENV}: not set: the token Argo CD reads {url} with (or --ssh-key-file for SSH)"
        )
    # GitHub and GitLab take any username with a token as the password; x-access-token is GitHub's own.
    return RepoCredential(
        url=url, username="x-access-token", password=SecretStr(token), source=f"${GIT_TOKEN_ENV}"
    )


def secret_name(url: str) -> str:
    """Stable per repository URL, so re-runs update the same Secret and another URL gets its own."""
    return "repo-" + hashlib.sha256(url.encode()).hexdigest()[:12]


def secret_object(cred: RepoCredential, *, reveal: bool) -> dict[str, Any]:
    """The repository Secret; with `reveal` False the values are `<from SOURCE>` (for --dry-run output)."""

    def value(v: SecretStr | None) -> str:
        assert v is not None
        return v.get_secret_value() if reveal else f"<from {cred.source}>"

    data: dict[str, str] = {"type": "git", "url": cred.url}
    if cred.ssh_private_key is not None:
        data["sshPrivateKey"] = value(cred.ssh_private_key)
    else:
        data["username"] = cred.username or ""
        data["password"] = value(cred.password)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(cred.url),
            "namespace": ARGOCD_NAMESPACE,
            "labels": {SECRET_TYPE_LABEL: "repository"},
        },
        "type": "Opaque",
        "stringData": data,
    }


def differs(kube: Kube, cred: RepoCredential) -> bool:
    """Whether the cluster's Secret is absent or holds other values (compared in memory, never shown)."""
    want = secret_object(cred, reveal=True)
    live = kube.get("v1", "Secret", want["metadata"]["name"], ARGOCD_NAMESPACE)
    if live is None:
        return True
    if (live.get("metadata") or {}).get("labels", {}).get(SECRET_TYPE_LABEL) != "repository":
        return True
    have = live.get("data") or {}
    for key, v in want["stringData"].items():
        try:
            if base64.b64decode(have.get(key, ""), validate=True).decode() != v:
                return True
        except (ValueError, UnicodeDecodeError):
            return True
    return set(have) != set(want["stringData"])


def apply_credential(kube: Kube, cred: RepoCredential) -> RepoCredentialResult:
    name = secret_name(cred.url)
    changed = differs(kube, cred)
    if changed:
        kube.apply([secret_object(cred, reveal=True)])
    return RepoCredentialResult(
        secret=f"{ARGOCD_NAMESPACE}/{name}", url=cred.url, changed=changed, source=cred.source
    )

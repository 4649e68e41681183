"""Pulling a base image from a registry: a small read-only client of the OCI distribution API.

Anonymous, basic or bearer-token auth (credentials from a containers/docker auth file);
plain http only for loopback registries. Kept in this one module so a fuller registry client
can replace it.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx

from llm_platform.errors import RegistryError
from llm_platform.modelcar.blob import CHUNK, INDEX_TYPES, MANIFEST_TYPES, sha256_digest
from llm_platform.modelcar.reference import DOCKER_HUB, ImageReference

ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
TIMEOUT = httpx.Timeout(30.0, read=300.0)


def auth_files() -> list[Path]:
    """Where podman/skopeo and docker keep registry credentials, in their order of precedence."""
    files = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    docker_config = os.environ.get("DOCKER_CONFIG")
    files.append(
        Path(docker_config) / "config.json" if docker_config else Path.home() / ".docker" / "config.json"
    )
    return files


def registry_credentials(registry: str) -> tuple[str, str] | None:
    """(user, password) for `registry` from the first auth file that has an entry for it."""
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == DOCKER_HUB:
        keys += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
    for path in auth_files():
        try:
            auths = json.loads(path.read_text()).get("auths", {})
        except (OSError, ValueError, AttributeError):
            continue
        for key in keys:
            entry = auths.get(key)
            if isinstance(entry, dict) and entry.get("auth"):
                try:
                    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                except ValueError:
                    continue
                return user, password
    return None


class RegistryPuller:
    """Read access to one repository of one registry."""

    def __init__(self, ref: ImageReference, credentials: tuple[str, str] | None = None) -> None:
        self.ref = ref
        self.base_url = f"{'http' if ref.insecure else 'https'}://{ref.api_host}/v2/{ref.repository}"
        self.credentials = credentials if credentials is not None else registry_credentials(ref.registry)
        self._authorization: str | None = None

    def _fail(self, what: str) -> RegistryError:
        return RegistryError(f"{self.ref.name}: {what}")

    def _authenticate(self, client: httpx.Client, challenge: str) -> None:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self.credentials:
                raise self._fail("registry requires credentials (none found in the auth files)")
            user, password = self.credentials
            self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            return
        if scheme.lower() != "bearer":
            raise self._fail(f"unsupported auth scheme {scheme!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if "realm" not in fields:
            raise self._fail("bearer challenge without a realm")
        query = {"scope": fields.get("scope") or f"repository:{self.ref.repository}:pull"}
        if fields.get("service"):
            query["service"] = fields["service"]
        auth = httpx.BasicAuth(*self.credentials) if self.credentials else None
        response = client.get(fields["realm"], params=query, auth=auth)
        if response.status_code != 200:
            raise self._fail(f"token request refused: HTTP {response.status_code}")
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise self._fail("token endpoint returned no token")
        self._authorization = f"Bearer {token}"

    def _send(self, client: httpx.Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        url = f"{self.base_url}/{path}"
        for _ in range(2):
            request_headers = dict(headers)
            if self._authorization:
                request_headers["Authorization"] = self._authorization
            request = client.build_request(method, url, headers=request_headers)
            response = client.send(request, stream=True)
            if response.status_code != 401:
                return response
            challenge = response.headers.get("www-authenticate", "")
            response.close()
            if self._authorization and not challenge.lower().startswith("bearer"):
                break
            self._authenticate(client, challenge)
        raise self._fail("authentication failed (HTTP 401)")

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=TIMEOUT, follow_redirects=True)

    def manifest(self, reference: str) -> tuple[bytes, str]:
        """(bytes, media type) of a manifest or index; a digest reference is verified."""
        try:
            with self._client() as client:
                response = self._send(client, "GET", f"manifests/{reference}", {"Accept": ACCEPT})
                try:
                    if response.status_code == 404:
                        raise self._fail(f"manifest {reference} not found")
                    if response.status_code != 200:
                        raise self._fail(f"GET manifest {reference}: HTTP {response.status_code}")
                    data = response.read()
                    media_type = response.headers.get("content-type", "").split(";")[0].strip()
                finally:
                    response.close()
        except httpx.HTTPError as exc:
            raise self._fail(f"cannot reach the registry: {exc.__class__.__name__}: {exc}") from None
        if reference.startswith("sha256:") and sha256_digest(data) != reference:
            raise self._fail(f"manifest {reference} does not match its digest")
        media_type = json.loads(data).get("mediaType") or media_type
        return data, media_type

    def blob(self, digest: str) -> bytes:
        data = b"".join(self.stream_blob(digest))
        if sha256_digest(data) != digest:
            raise self._fail(f"blob {digest} does not match its digest")
        return data

    def stream_blob(self, digest: str) -> Iterator[bytes]:
        """The blob's bytes in chunks (the caller verifies the digest over the whole stream)."""
        try:
            with self._client() as client:
                response = self._send(client, "GET", f"blobs/{digest}", {})
                try:
                    if response.status_code != 200:
                        raise self._fail(f"GET blob {digest}: HTTP {response.status_code}")
                    yield from response.iter_bytes(CHUNK)
                finally:
                    response.close()
        except httpx.HTTPError as exc:
            raise self._fail(f"blob {digest}: {exc.__class__.__name__}: {exc}") from None

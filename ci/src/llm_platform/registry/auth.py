"""Registry credentials and the authentication flow (anonymous, basic, bearer-token challenge).

Where credentials come from, first match wins: explicit flags; the environment
(`LLM_PLATFORM_REGISTRY_USERNAME` / `LLM_PLATFORM_REGISTRY_PASSWORD`); then the standard auth files,
`REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, `$DOCKER_CONFIG/config.json` or
`~/.docker/config.json`. Entries of an auth file, including `credsStore` / `credHelpers`, are resolved by
oras-py's `AuthBackend._load_auth` (its credential-helper protocol is what we want). oras-py's own file
discovery is not used: it ignores `DOCKER_CONFIG` and `REGISTRY_AUTH_FILE` and merges files in set order.

oras-py's token backend is not used for the challenge flow: it caches one token for every scope, so a
pull-scoped token is replayed on a push (401) and a mount (two repositories) is never authorised; and it
is bound to `requests`, while layer uploads stream through httpx. `RegistryAuth` below is an `httpx.Auth`
that keeps one token per scope set. Secrets never reach a log line, an exception message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from pydantic import BaseModel, ConfigDict, SecretStr

from llm_platform.documents import CONFIG_LIMITS, DocumentError, load_json, read_bytes
from llm_platform.errors import InputError, RegistryError
from llm_platform.http_client import httpx
from llm_platform.logs import get_logger
from llm_platform.registry import PASSWORD_ENV, USERNAME_ENV
from llm_platform.registry.reference import DOCKER_HUB, DOCKER_HUB_API_HOST

log = get_logger("registry.auth")


class Credentials(BaseModel):
    """A username and secret for one registry; `source` says where they came from (for messages)."""

    model_config = ConfigDict(frozen=True)

    username: str
    password: SecretStr
    source: str

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def auth_file_candidates(environ: Mapping[str, str]) -> list[Path]:
    """The auth files podman/skopeo and docker read, in the order they are consulted."""
    files: list[Path] = []
    if environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(environ["REGISTRY_AUTH_FILE"]))
    if environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    if environ.get("DOCKER_CONFIG"):
        files.append(Path(environ["DOCKER_CONFIG"]) / "config.json")
    else:
        home = environ.get("HOME") or str(Path.home())
        files.append(Path(home) / ".docker" / "config.json")
    return files


def _host_keys(host: str) -> list[str]:
    """Keys an auth file may use for `host` (docker writes Docker Hub as its v1 index URL)."""
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in (DOCKER_HUB, DOCKER_HUB_API_HOST, "index.docker.io"):
        keys += ["https://index.docker.io/v1/", "index.docker.io", DOCKER_HUB, DOCKER_HUB_API_HOST]
    return keys


def _read_auth_file(path: Path) -> dict[str, object]:
    try:
        data = load_json(read_bytes(path, CONFIG_LIMITS), source=str(path), limits=CONFIG_LIMITS)
    except DocumentError as exc:
        if exc.kind in ("missing", "unreadable"):
            raise InputError(f"{path}: cannot read auth file ({exc.detail})") from None
        raise
    if not isinstance(data, dict):
        raise InputError(f"{path}: an auth file must hold a JSON object")
    return data


def _credentials_from_file(path: Path, host: str) -> Credentials | None:
    # Imported here: oras-py pulls in `requests` (~0.2 s), and most runs read no auth file at all.
    import oras.auth.base  # type: ignore[import-untyped]

    data = _read_auth_file(path)
    backend = oras.auth.base.AuthBackend()
    backend._auth_config = {
        "auths": dict(data.get("auths") or {}),  # type: ignore[call-overload]
        "credsStore": data.get("credsStore"),
        "credHelpers": dict(data.get("credHelpers") or {}),  # type: ignore[call-overload]
    }
    for key in _host_keys(host):
        if backend._load_auth(key):
            encoded: str = backend._basic_auth
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise InputError(f"{path}: auths.{key}.auth is not base64 of 'user:password'") from None
            if not username:
                raise InputError(f"{path}: auths.{key}.auth has no username")
            return Credentials(username=username, password=SecretStr(password), source=str(path))
    return None


def check_credential_pair(username: str | None, has_password: bool, *, password_flag: str) -> None:
    """The one credential rule: a registry user and a password go together. `password_flag` names where the
    password is given (`--password-stdin`, a Dagger `--password`), for the message."""
    if username is not None and not username:
        raise InputError("--username: empty user name")
    if has_password and not username:
        raise InputError(f"{password_flag} needs --username (e.g. oauth2accesstoken, _json_key or your user)")
    if username and not has_password:
        raise InputError(f"--username {username}: give the password with {password_flag}")


def resolve_credentials(
    host: str,
    *,
    username: str | None = None,
    password: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials | None:
    """Credentials for `host`, or None for anonymous access.

    First match wins: `username` with `password` (or, without one, ${PASSWORD_ENV}); ${USERNAME_ENV} with
    ${PASSWORD_ENV}; the auth files (`auth_file_candidates`).
    """
    env = os.environ if environ is None else environ
    if username is not None or password is not None:
        if username and password is None:
            password = env.get(PASSWORD_ENV)
        check_credential_pair(
            username, password is not None, password_flag=f"--password-stdin or ${PASSWORD_ENV}"
        )
        assert username is not None and password is not None
        return Credentials(username=username, password=SecretStr(password), source="command line")
    env_user, env_password = env.get(USERNAME_ENV), env.get(PASSWORD_ENV)
    if env_user or env_password:
        if not env_user or env_password is None:
            raise InputError(f"${USERNAME_ENV} and ${PASSWORD_ENV} must be set together")
        return Credentials(username=env_user, password=SecretStr(env_password), source="environment")
    for path in auth_file_candidates(env):
        if path.is_file():
            found = _credentials_from_file(path, host)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]


_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme=scheme.lower(), params=params)


Scope = frozenset[tuple[str, str]]  # {(repository, action)}


def request_scope(request: httpx.Request) -> Scope:
    """The repository actions a distribution-API request needs (pull for reads, push for writes, mounts)."""
    path = unquote(request.url.path)
    if not path.startswith("/v2/"):
        return frozenset()
    name = path[4:]
    for marker in ("/blobs/", "/manifests/", "/tags/"):
        cut = name.rfind(marker)
        if cut > 0:
            name = name[:cut]
            break
    else:
        return frozenset()
    if request.method in ("GET", "HEAD"):
        scope: set[tuple[str, str]] = {(name, "pull")}
    else:
        scope = {(name, "pull"), (name, "push")}
    query = parse_qs(
        request.url.query.decode() if isinstance(request.url.query, bytes) else request.url.query
    )
    for source in query.get("from", []):
        scope.add((source, "pull"))
    return frozenset(scope)


def _scope_params(scope: Scope) -> list[str]:
    by_repo: dict[str, set[str]] = {}
    for repo, action in scope:
        by_repo.setdefault(repo, set()).add(action)
    return [f"repository:{repo}:{','.join(sorted(actions))}" for repo, actions in sorted(by_repo.items())]


def _parse_challenge_scope(text: str) -> Scope:
    scope: set[tuple[str, str]] = set()
    for item in text.split():
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind == "repository" and name:
            scope.update((name, action) for action in actions.split(",") if action)
    return frozenset(scope)


class RegistryAuth(httpx.Auth):
    """Answers one registry's 401 challenges; tokens are cached per scope set and reused when they cover a request."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | None,
        *,
        verify: bool | str = True,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self.host = host
        self.credentials = credentials
        self._verify = verify
        # A token is a small answer: the metadata bound of `llm_platform.network` (RegistryClient passes it).
        self._timeout = timeout or httpx.Timeout(20.0, connect=15.0)
        self._lock = threading.Lock()
        self._tokens: list[tuple[Scope, str]] = []
        self._basic = False  # the registry asked for basic auth: send it up front from now on

    # -- httpx.Auth -----------------------------------------------------------------------------------
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scope = request_scope(request)
        self._apply(request, scope)
        response = yield request
        if response.status_code != 401:
            return
        header = response.headers.get("www-authenticate", "")
        challenge = parse_challenge(header)
        if challenge is None:
            return
        if challenge.scheme == "basic":
            if self.credentials is None or "Authorization" in request.headers:
                return
            with self._lock:
                self._basic = True
            request.headers["Authorization"] = self.credentials.basic_header()
        elif challenge.scheme == "bearer":
            wanted = scope | _parse_challenge_scope(challenge.params.get("scope", ""))
            token = self._fetch_token(challenge, wanted)
            with self._lock:
                self._tokens.insert(0, (wanted, token))
            request.headers["Authorization"] = f"Bearer {token}"
        else:
            return
        yield request

    # -- internals -------------------------------------------------------------------------------------
    def _apply(self, request: httpx.Request, scope: Scope) -> None:
        with self._lock:
            if self._basic and self.credentials is not None:
                request.headers["Authorization"] = self.credentials.basic_header()
                return
            for covered, token in self._tokens:
                if scope <= covered:
                    request.headers["Authorization"] = f"Bearer {token}"
                    return

    def _fetch_token(self, challenge: Challenge, scope: Scope) -> str:
        realm = challenge.params.get("realm")
        if not realm or urlparse(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{self.host}: bearer challenge without a usable realm: {challenge.params!r}")
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        params += [("scope", s) for s in _scope_params(scope)]
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic_header()
        who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
        log.debug("requesting a token from %s for %s (%s)", realm, " ".join(_scope_params(scope)), who)
        try:
            with httpx.Client(verify=self._verify, timeout=self._timeout) as client:
                response = client.get(realm, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise RegistryError(
                f"{self.host}: token service {realm} stalled: no answer within {self._timeout.read:g} s "
                f"({type(exc).__name__}; the bound is --timeout or $LLM_PLATFORM_HTTP_TIMEOUT)"
            ) from None
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"{self.host}: token service {realm} unreachable: {type(exc).__name__}"
            ) from None
        if response.status_code in (401, 403):
            hint = (
                f" (credentials from {self.credentials.source})"
                if self.credentials
                else f": log in, or pass --username with --password-stdin or ${PASSWORD_ENV}"
            )
            raise RegistryError(
                f"{self.host}: authentication failed: token service {realm} refused {who} "
                f"(HTTP {response.status_code}){hint}"
            )
        if response.status_code != 200:
            raise RegistryError(f"{self.host}: token service {realm} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise RegistryError(f"{self.host}: token service {realm} did not answer JSON") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.host}: token service {realm} answered without a token")
        return token

"""A small Google Secret Manager client (REST v1, https://cloud.google.com/secret-manager/docs/reference/rest)
over the project's HTTP client, and `apply`, which carries a `secrets.SecretsPlan` out on it.

Requests are bounded like the registry client's (`llm_platform.network`): connect and answer timeouts,
429/5xx and transport failures retried with backoff, Retry-After honoured up to its bound, one retry
budget per request. Credentials: a bearer token from $GOOGLE_OAUTH_ACCESS_TOKEN, the variable the `tofu`
step takes it from (`gcloud auth print-access-token`, or Workload Identity Federation in CI). Errors are
one line naming the secret and the HTTP status and reason; a rejected token (401/403) is the user's
(`SecretManagerAuthError`, exit 2), a service that keeps failing is the service's (`SecretManagerError`,
exit 1). Secret values travel only in request bodies: never in a URL, a log line or an error."""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import SecretStr

from llm_platform.cluster.secrets import (
    KeyPlan,
    ProviderKind,
    RequiredSecret,
    SecretsPlan,
    SecretsResult,
    result_of,
)
from llm_platform.dagger_module.commands import GOOGLE_ACCESS_TOKEN_ENV
from llm_platform.errors import InputError, PlatformError, one_line
from llm_platform.http_client import httpx
from llm_platform.logs import get_logger
from llm_platform.network import GiveUp, NetworkBounds, RetryBudget, parse_retry_after

log = get_logger("cluster.gsm")

TOKEN_ENV = GOOGLE_ACCESS_TOKEN_ENV
ENDPOINT_ENV = "LLM_PLATFORM_SECRET_MANAGER_ENDPOINT"  # another base URL (tests: a loopback stand-in)
DEFAULT_ENDPOINT = "https://secretmanager.googleapis.com"
PAGE_SIZE = 250
_RETRIED = (429, 500, 502, 503, 504)
# https://cloud.google.com/resource-manager/docs/creating-managing-projects (project IDs), and the
# secretId rule of projects.secrets.create: letters, digits, - and _, at most 255.
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[0-9]{1,20}$")
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_TOKEN_HINT = f"set ${TOKEN_ENV} to a current access token (e.g. `export {TOKEN_ENV}=$(gcloud auth print-access-token)`)"


class SecretManagerError(PlatformError):
    """Secret Manager failed or could not be reached; `status` and `reason` (Google's `error.status`,
    e.g. UNAVAILABLE) when it answered."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class SecretManagerAuthError(SecretManagerError, InputError):
    """The token was refused (401) or lacks a permission (403): the user's to fix (exit 2)."""

    exit_code = InputError.exit_code


class _Retry(Exception):  # noqa: N818 - control flow inside the client
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        stalled: float = 0.0,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.stalled = stalled
        self.retry_after = retry_after


def _google_error(response: httpx.Response) -> tuple[str, str]:
    """(status, message) of Google's error body `{"error": {"code", "message", "status"}}`."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("status") or ""), one_line(str(error.get("message") or ""), 200)


def _describe(response: httpx.Response) -> tuple[str, str]:
    """`HTTP 503 UNAVAILABLE: message` and the reason (Google's status, else the HTTP reason phrase)."""
    status, message = _google_error(response)
    reason = status or response.reason_phrase
    text = (
        f"HTTP {response.status_code}"
        + (f" {reason}" if reason else "")
        + (f": {message}" if message else "")
    )
    return text, reason


def _check_project(project: str) -> None:
    if not _PROJECT_ID.match(project):
        raise InputError(f"Secret Manager: {project!r} is not a Google Cloud project ID")


def _check_secret_id(secret_id: str) -> None:
    if not _SECRET_ID.match(secret_id):
        raise InputError(
            f"Secret Manager: {secret_id!r} is not a valid secret ID (letters, digits, - and _, at most 255)"
        )


class SecretManagerClient:
    """Secret Manager's REST API at `endpoint` with a bearer `token`, every request under `bounds`."""

    def __init__(
        self,
        token: SecretStr,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        bounds: NetworkBounds | None = None,
        retries: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        token_source: str = f"${TOKEN_ENV}",
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bounds = bounds or NetworkBounds.from_timeout()
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._token_source = token_source
        self._http = httpx.Client(
            base_url=self.endpoint,
            headers={
                "Authorization": f"Bearer {token.get_secret_value()}",
                "User-Agent": "llm-platform",
            },
            timeout=httpx.Timeout(self.bounds.metadata, connect=self.bounds.connect),
            follow_redirects=False,
        )

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, bounds: NetworkBounds | None = None
    ) -> SecretManagerClient:
        """A client with the token of $GOOGLE_OAUTH_ACCESS_TOKEN and the endpoint of
        $LLM_PLATFORM_SECRET_MANAGER_ENDPOINT (default: Google's)."""
        environ = os.environ if environ is None else environ
        token = environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise InputError(f"Secret Manager: no access token: {_TOKEN_HINT}")
        endpoint = environ.get(ENDPOINT_ENV, "").strip() or DEFAULT_ENDPOINT
        return cls(
            SecretStr(token), endpoint=endpoint, bounds=bounds or NetworkBounds.from_timeout(environ=environ)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SecretManagerClient:  # noqa: PYI034 - final class in practice
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SecretManagerClient({self.endpoint})"

    # -- plumbing ---------------------------------------------------------------------------------------
    def _once(self, method: str, url: str, what: str, timeout: httpx.Timeout, body: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            seconds = float((timeout.connect if isinstance(exc, httpx.ConnectTimeout) else timeout.read) or 0)
            doing = "no connection" if isinstance(exc, httpx.ConnectTimeout) else "no answer"
            raise _Retry(
                f"{what}: {self.endpoint} stalled: {doing} for {seconds:g} s ({type(exc).__name__})",
                reason="Timeout",
                stalled=seconds,
            ) from None
        except httpx.TransportError as exc:
            raise _Retry(
                f"{what}: {self.endpoint} unreachable ({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})",
                reason="Unreachable",
            ) from None
        if response.status_code in (401, 403):
            text, reason = _describe(response)
            problem = (
                "the token was refused (missing or expired)"
                if response.status_code == 401
                else (
                    "the token's identity lacks a permission (it needs roles/secretmanager.admin on the project, "
                    "or secretmanager.secrets.create, .list and .versions.add)"
                )
            )
            raise SecretManagerAuthError(
                f"Secret Manager: {what}: {text}: {problem}; {_TOKEN_HINT} (token from {self._token_source})",
                status=response.status_code,
                reason=reason,
            )
        if response.status_code in _RETRIED:
            text, reason = _describe(response)
            retry_after = (
                parse_retry_after(response.headers.get("retry-after"))
                if response.status_code in (429, 503)
                else None
            )
            raise _Retry(
                f"{what}: {text}", status=response.status_code, reason=reason, retry_after=retry_after
            )
        return response

    def _request(self, method: str, url: str, what: str, body: Any = None) -> httpx.Response:
        """One API request, retried within the retries and the retry budget."""
        budget = RetryBudget(self.bounds, retries=self.retries, backoff=self.backoff)
        while True:
            timeout = httpx.Timeout(
                budget.timeout(self.bounds.metadata), connect=budget.timeout(self.bounds.connect)
            )
            try:
                return self._once(method, url, what, timeout, body)
            except _Retry as exc:
                try:
                    delay = budget.failed(stalled=exc.stalled, retry_after=exc.retry_after)
                except GiveUp as stop:
                    raise SecretManagerError(
                        f"Secret Manager: {exc} ({stop})", status=exc.status, reason=exc.reason
                    ) from None
                log.debug("%s; retrying in %.1fs", exc, delay)
                self._sleep(delay)
                budget.waited(delay)

    def _unexpected(self, what: str, response: httpx.Response) -> SecretManagerError:
        text, reason = _describe(response)
        return SecretManagerError(
            f"Secret Manager: {what}: {text}", status=response.status_code, reason=reason
        )

    @staticmethod
    def _json(what: str, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise SecretManagerError(f"Secret Manager: {what}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise SecretManagerError(f"Secret Manager: {what}: the answer is not a JSON object")
        return data

    # -- API --------------------------------------------------------------------------------------------
    def list_secrets(self, project: str) -> list[str]:
        """The IDs of every secret of `project` (projects.secrets.list, following nextPageToken)."""
        _check_project(project)
        what = f"list secrets of project {project}"
        ids: list[str] = []
        token: str | None = ""
        pages = 0
        while token is not None:
            params = httpx.QueryParams({"pageSize": PAGE_SIZE, **({"pageToken": token} if token else {})})
            response = self._request("GET", f"/v1/projects/{project}/secrets?{params}", what)
            if response.status_code != 200:
                raise self._unexpected(what, response)
            data = self._json(what, response)
            for secret in data.get("secrets") or []:
                name = secret.get("name") if isinstance(secret, dict) else None
                if isinstance(name, str) and "/secrets/" in name:
                    ids.append(name.rsplit("/secrets/", 1)[1])
            next_token = data.get("nextPageToken")
            token = next_token if isinstance(next_token, str) and next_token else None
            pages += 1
            if pages > 10_000:
                raise SecretManagerError(f"Secret Manager: {what}: more than 10000 pages, giving up")
        return ids

    def has_enabled_version(self, project: str, secret_id: str) -> bool:
        """Whether the secret's `latest` version (what an ExternalSecret reads by default) is ENABLED
        (projects.secrets.versions.get; 404: no version, or no secret)."""
        _check_project(project)
        _check_secret_id(secret_id)
        what = f"get the latest version of {secret_id} (project {project})"
        response = self._request("GET", f"/v1/projects/{project}/secrets/{secret_id}/versions/latest", what)
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise self._unexpected(what, response)
        return self._json(what, response).get("state") == "ENABLED"

    def existing_values(self, project: str, secret_ids: list[str]) -> set[str]:
        """Which of `secret_ids` have a value (an enabled latest version) in `project`: one list, then one
        version lookup per listed secret among them (a secret created without a version has no value)."""
        listed = set(self.list_secrets(project))
        return {sid for sid in secret_ids if sid in listed and self.has_enabled_version(project, sid)}

    def create_secret(self, project: str, secret_id: str) -> bool:
        """Create the secret with automatic replication (projects.secrets.create); False when it exists already
        (409 ALREADY_EXISTS)."""
        _check_project(project)
        _check_secret_id(secret_id)
        what = f"create secret {secret_id} (project {project})"
        response = self._request(
            "POST",
            f"/v1/projects/{project}/secrets?secretId={secret_id}",
            what,
            {"replication": {"automatic": {}}},
        )
        if response.status_code == 409:
            return False
        if response.status_code != 200:
            raise self._unexpected(what, response)
        return True

    def add_version(self, project: str, secret_id: str, value: SecretStr) -> str:
        """Add a version holding `value` (projects.secrets.addVersion); its resource name."""
        _check_project(project)
        _check_secret_id(secret_id)
        what = f"add a version to secret {secret_id} (project {project})"
        data = base64.b64encode(value.get_secret_value().encode("utf-8")).decode("ascii")
        response = self._request(
            "POST",
            f"/v1/projects/{project}/secrets/{secret_id}:addVersion",
            what,
            {"payload": {"data": data}},
        )
        if response.status_code == 404:
            raise SecretManagerError(
                f"Secret Manager: {what}: HTTP 404 NOT_FOUND: the secret does not exist",
                status=404,
                reason="NOT_FOUND",
            )
        if response.status_code != 200:
            raise self._unexpected(what, response)
        return str(self._json(what, response).get("name") or "")


def apply(plan: SecretsPlan, client: SecretManagerClient) -> SecretsResult:
    """Carry `plan` out: `create` makes the secret (409: someone made it meanwhile; fine) and adds a version
    with the value; `rotate` adds a version; `keep`, `provided` and `unsupported` send nothing. A second run
    (the plan computed again) keeps everything."""
    for entry in plan.keys:
        if entry.action in ("create", "rotate"):
            _apply_one(entry, client)
    return result_of(plan)


def _apply_one(entry: KeyPlan, client: SecretManagerClient) -> None:
    if entry.provider is not ProviderKind.GCPSM or not entry.project_id:
        raise InputError(f"{entry.key}: {entry.store} is not a gcpsm store: nothing can be created in it")
    if entry.value is None:
        raise InputError(f"{entry.key}: no value planned for {entry.action}")
    if entry.action == "create":
        created = client.create_secret(entry.project_id, entry.key)
        if not created:
            log.info(
                "%s: secret exists already in project %s (made meanwhile): adding the value",
                entry.key,
                entry.project_id,
            )
    client.add_version(entry.project_id, entry.key, entry.value)
    log.info(
        "%s: %s in project %s (value %s)",
        entry.key,
        "created" if entry.action == "create" else "rotated: new version",
        entry.project_id,
        entry.source,
    )


def existing_for(required: list[RequiredSecret], client: SecretManagerClient) -> set[str]:
    """The keys among `required` of gcpsm stores that have a value in Secret Manager: the `existing`
    argument of `secrets.plan`."""
    projects: dict[str, list[str]] = {}
    for req in required:
        if req.provider is ProviderKind.GCPSM and req.project_id:
            projects.setdefault(req.project_id, []).append(req.key)
    found: set[str] = set()
    for project, keys in projects.items():
        found |= client.existing_values(project, keys)
    return found

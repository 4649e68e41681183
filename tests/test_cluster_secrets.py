"""`cluster secrets`: the secret values an environment needs, read from the real tree (the ExternalSecrets
Argo CD applies for gke and for kind, and the ClusterSecretStore they read); the value shapes; the plan
(create / keep / rotate); values never shown; and the Google Secret Manager client against a loopback HTTP
server that stands in only to answer as the REST API defines it and to inject faults (401, 403, 409,
429 with Retry-After, 503, a stall, pagination). There is no Secret Manager here: requests and bodies are
checked against https://cloud.google.com/secret-manager/docs/reference/rest (projects.secrets.list,
projects.secrets.create, projects.secrets.addVersion, projects.secrets.versions.get)."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from llm_platform.cluster import gsm
from llm_platform.cluster.secrets import (
    Generator,
    ProviderKind,
    RequiredSecret,
    SecretsPlan,
    env_var_for,
    environment_objects,
    parse_from_file,
    plan,
    required_secrets,
    result_of,
    shape_for,
)
from llm_platform.errors import InputError, PlatformError
from llm_platform.network import NetworkBounds
from tests.support.loopback import LoopbackHTTPServer
from tests.support.tools import require_tool

GKE_KEYS = {
    "litellm-master-key",
    "litellm-salt-key",
    "litellm-db-password",
    "litellm-open-webui-key",
    "oauth2-proxy-client-secret",
    "oauth2-proxy-cookie-secret",
    "dex-google-client-id",
    "dex-google-client-secret",
}
GIVEN = {"dex-google-client-id", "dex-google-client-secret"}  # an external provider's: never generated
PROJECT = "llm-platform-example"
TOKEN = "ya29.test-token-never-shown"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the package's loggers (attached directly: the CLI's setup stops propagation)."""
    logger = logging.getLogger("llm_platform")
    logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(old)


def _objects(env: str, repo_root: Path) -> list[dict[str, Any]]:
    require_tool("kubectl")
    return environment_objects(repo_root, env)


def _es(name: str, namespace: str, keys: dict[str, str], store: str = "cloud-secrets") -> dict[str, Any]:
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": store},
            "target": {"name": name},
            "data": [{"secretKey": sk, "remoteRef": {"key": rk}} for sk, rk in keys.items()],
        },
    }


def _gcpsm_store(name: str = "cloud-secrets", project: str = PROJECT) -> dict[str, Any]:
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": name},
        "spec": {"provider": {"gcpsm": {"projectID": project}}},
    }


def _required(*keys: str) -> list[RequiredSecret]:
    return required_secrets([_gcpsm_store(), _es("app", "ns", {k.upper(): k for k in keys})])


def _values(p: SecretsPlan) -> dict[str, str]:
    return {k.key: k.value.get_secret_value() for k in p.keys if k.value is not None}


_GIVEN_ENV = {env_var_for(k): f"given-{k}" for k in GIVEN}


# -- the real tree ---------------------------------------------------------------------------------------


def test_gke_needs_the_keys_of_its_externalsecrets_in_the_gcpsm_store(repo_root: Path) -> None:
    required = required_secrets(_objects("gke", repo_root))
    assert {r.key for r in required} == GKE_KEYS
    for r in required:
        assert (r.store_kind, r.store_name) == ("ClusterSecretStore", "cloud-secrets")
        assert r.provider is ProviderKind.GCPSM and r.project_id == PROJECT
    by_key = {r.key: r for r in required}
    # Who uses each key, and where the value lands (through the target templates).
    shared = by_key["oauth2-proxy-client-secret"].used_by
    assert {(u.external_secret, tuple(u.target_keys)) for u in shared} == {
        ("experience/dex-env", ("OAUTH2_PROXY_CLIENT_SECRET",)),
        ("experience/oauth2-proxy", ("client-secret",)),
    }
    [db] = by_key["litellm-db-password"].used_by
    assert (db.external_secret, db.target, db.target_keys) == (
        "litellm/litellm-db",
        "litellm/litellm-db",
        ["password"],
    )
    [cookie] = by_key["oauth2-proxy-cookie-secret"].used_by
    assert cookie.target_keys == ["cookie-secret"]
    assert {k for k, r in by_key.items() if r.shape.generator is None} == GIVEN
    # Nothing exists yet: everything is created; the Google client must be given.
    with pytest.raises(InputError) as err:
        plan(required, set(), set(), environ={})
    for key in GIVEN:
        assert key in str(err.value) and env_var_for(key) in str(err.value)
    first = plan(required, set(), set(), environ=_GIVEN_ENV)
    assert set(first.with_action("create")) == GKE_KEYS
    assert plan(required, GKE_KEYS, set(), environ={}).with_action("keep") == sorted(GKE_KEYS)


def test_kind_uses_the_fake_provider_and_needs_nothing_created(repo_root: Path) -> None:
    required = required_secrets(_objects("kind", repo_root))
    assert {r.key for r in required} == GKE_KEYS  # the same ExternalSecrets in both environments
    assert all(r.provider is ProviderKind.FAKE and r.in_fake_store for r in required)
    p = plan(required, set(), set(), environ={})
    assert p.nothing_to_create and set(p.with_action("provided")) == GKE_KEYS
    assert any("fake provider" in n and "nothing to create" in n for n in p.notes)
    result = result_of(p)
    assert not result.created and not result.rotated and set(result.provided) == GKE_KEYS


def test_environment_objects_are_what_the_apps_render_and_an_unknown_env_is_named(repo_root: Path) -> None:
    objects = _objects("gke", repo_root)
    kinds = {(o.get("kind"), (o.get("metadata") or {}).get("name")) for o in objects}
    assert ("Application", "platform") in kinds and ("ClusterSecretStore", "cloud-secrets") in kinds
    # The environment's patch has replaced the ENVIRONMENT placeholder: the gke store, not kind's.
    [store] = [o for o in objects if o.get("kind") == "ClusterSecretStore"]
    assert "gcpsm" in store["spec"]["provider"]
    with pytest.raises(InputError) as err:
        environment_objects(repo_root, "nowhere")
    assert "root-nowhere.yaml" in str(err.value) and "gke" in str(err.value)


# -- what the ExternalSecrets read, on built objects ---------------------------------------------------


@pytest.mark.unit
def test_required_secrets_reads_data_datafrom_and_the_store_each_entry_names() -> None:
    es = _es("a", "ns", {"X": "one"})
    es["spec"]["dataFrom"] = [{"extract": {"key": "blob"}}, {"find": {"name": {"regexp": ".*"}}}]
    es["spec"]["data"].append(
        {
            "secretKey": "Y",
            "remoteRef": {"key": "two", "property": "field"},
            "sourceRef": {"storeRef": {"kind": "ClusterSecretStore", "name": "other"}},
        }
    )
    fake = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": "other"},
        "spec": {"provider": {"fake": {"data": [{"key": "two", "value": "x"}]}}},
    }
    required = {r.key: r for r in required_secrets([_gcpsm_store(), fake, es])}
    assert set(required) == {"one", "blob", "two"}
    assert required["two"].provider is ProviderKind.FAKE and required["two"].in_fake_store
    assert required["blob"].used_by[0].via == "dataFrom" and required["blob"].structured
    with pytest.raises(InputError) as err:
        required_secrets([_es("b", "ns", {"X": "k"}, store="missing")])
    assert "ns/b" in str(err.value) and "missing" in str(err.value)


# -- shapes ----------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_generated_values_have_the_shape_their_consumer_requires() -> None:
    required = _required(
        "litellm-master-key",
        "litellm-salt-key",
        "litellm-db-password",
        "oauth2-proxy-cookie-secret",
        "oauth2-proxy-client-secret",
        "litellm-open-webui-key",
    )
    for _ in range(20):  # random values: not one lucky draw
        values = _values(plan(required, set(), set(), environ={}))
        assert values["litellm-master-key"].startswith("sk-") and len(values["litellm-master-key"]) > 40
        assert values["litellm-open-webui-key"].startswith("sk-")
        assert re.fullmatch(r"[A-Za-z0-9]{32}", values["litellm-db-password"])
        assert len(values["oauth2-proxy-cookie-secret"].encode()) == 32
        assert len(values["litellm-salt-key"]) >= 43 and len(values["oauth2-proxy-client-secret"]) >= 43
    assert len(set(_values(plan(required, set(), set(), environ={})).values())) == len(required)
    assert shape_for("litellm-db-password").generator is Generator.ALPHANUMERIC
    assert shape_for("dex-google-client-secret").generator is None
    assert shape_for("some-api-key").generator is None  # unknown keys are not guessed


@pytest.mark.unit
def test_a_key_that_cannot_be_generated_must_be_given_and_says_how(tmp_path: Path) -> None:
    required = _required("dex-google-client-id", "dex-google-client-secret", "litellm-master-key")
    with pytest.raises(InputError) as err:
        plan(required, set(), set(), environ={})
    message = str(err.value)
    assert "\n" not in message and err.value.exit_code == 2
    for key in ("dex-google-client-id", "dex-google-client-secret"):
        assert f"{key}: cannot be generated" in message
        assert f"--from-file {key}=PATH" in message and f"${env_var_for(key)}" in message
    assert env_var_for("dex-google-client-id") == "LLM_PLATFORM_SECRET_DEX_GOOGLE_CLIENT_ID"
    assert env_var_for("a.b-c") == "LLM_PLATFORM_SECRET_A_B_C"
    # Given: a file (its final newline dropped) wins over the variable.
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("from-the-file\n")
    p = plan(
        required,
        {"litellm-master-key"},
        set(),
        from_files=parse_from_file([f"dex-google-client-secret={secret_file}"]),
        environ={
            env_var_for("dex-google-client-id"): "from-env.apps.googleusercontent.com",
            env_var_for("dex-google-client-secret"): "loses",
        },
    )
    values = _values(p)
    assert values == {
        "dex-google-client-id": "from-env.apps.googleusercontent.com",
        "dex-google-client-secret": "from-the-file",
    }
    assert {k.key: k.source for k in p.keys if k.source} == {
        "dex-google-client-id": "env",
        "dex-google-client-secret": "file",
    }


@pytest.mark.unit
def test_given_values_are_checked_against_the_shape_without_echoing_them(tmp_path: Path) -> None:
    cases = {
        "litellm-master-key": "no-prefix-value-1",
        "litellm-db-password": "has/slash@and:colon",
        "oauth2-proxy-cookie-secret": "seventeen-bytes-x",
    }
    for key, bad in cases.items():
        with pytest.raises(InputError) as err:
            plan(_required(key), set(), set(), environ={env_var_for(key): bad})
        assert key in str(err.value) and env_var_for(key) in str(err.value) and bad not in str(err.value)
    good_cookie = base64.urlsafe_b64encode(b"k" * 32).decode()  # base64url of 32 bytes: accepted
    assert plan(
        _required("oauth2-proxy-cookie-secret"),
        set(),
        set(),
        environ={env_var_for("oauth2-proxy-cookie-secret"): good_cookie},
    )
    with pytest.raises(InputError) as err:
        parse_from_file(["no-equals-sign"])
    assert "KEY=PATH" in str(err.value)
    with pytest.raises(InputError) as err:
        plan(
            _required("litellm-master-key"),
            set(),
            set(),
            from_files={"litellm-master-key": tmp_path / "nope"},
        )
    assert "litellm-master-key" in str(err.value) and "no such file" in str(err.value)


# -- the plan --------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_plan_creates_the_missing_keeps_the_rest_and_rotates_only_what_is_named() -> None:
    required = _required("litellm-master-key", "litellm-salt-key", "litellm-db-password")
    p = plan(required, {"litellm-salt-key", "litellm-db-password"}, set(), environ={})
    assert p.with_action("create") == ["litellm-master-key"]
    assert p.with_action("keep") == ["litellm-db-password", "litellm-salt-key"]
    assert {k.key for k in p.keys if k.value is not None} == {"litellm-master-key"}  # kept: no value made
    # The salt is never rotated unless --rotate names it; naming it says what that breaks.
    p = plan(
        required,
        {"litellm-salt-key", "litellm-db-password", "litellm-master-key"},
        {"litellm-salt-key"},
        environ={},
    )
    assert p.with_action("rotate") == ["litellm-salt-key"]
    assert p.with_action("keep") == ["litellm-db-password", "litellm-master-key"]
    [salt] = [k for k in p.keys if k.key == "litellm-salt-key"]
    assert any("decrypt" in n for n in salt.notes)
    # A value given for a key that exists is not used without --rotate, and the plan says so.
    p = plan(required, {"litellm-db-password"}, set(), environ={env_var_for("litellm-db-password"): "abc123"})
    [db] = [k for k in p.keys if k.key == "litellm-db-password"]
    assert (
        db.action == "keep"
        and db.value is None
        and any("--rotate litellm-db-password" in n for n in db.notes)
    )
    with pytest.raises(InputError) as err:
        plan(required, set(), {"litellm-master-kee"}, environ={})
    assert "--rotate litellm-master-kee" in str(err.value) and "litellm-master-key" in str(err.value)
    with pytest.raises(InputError) as err:
        plan(required, set(), set(), from_files={"nothing-reads-this": Path("x")}, environ={})
    assert "--from-file nothing-reads-this" in str(err.value)


@pytest.mark.unit
def test_values_never_appear_in_str_repr_dumps_results_or_logs(logs: pytest.LogCaptureFixture) -> None:
    required = _required("litellm-master-key", "litellm-db-password", "oauth2-proxy-cookie-secret")
    p = plan(required, set(), set(), environ={})
    values = _values(p)
    assert len(values) == 3
    server, state = _serve()
    try:
        with _client(server) as client:
            result = gsm.apply(p, client)
    finally:
        server.stop()
    assert set(result.created) == set(values)
    shown = [
        str(p),
        repr(p),
        p.model_dump_json(),
        json.dumps(p.model_dump(mode="json")),
        *(repr(k) for k in p.keys),
        *(str(k.value) for k in p.keys),
        result.model_dump_json(),
        repr(result),
        logs.text,
        *(r.getMessage() for r in logs.records),
    ]
    for value in values.values():
        assert all(value not in text for text in shown), "a secret value was shown"
    assert TOKEN not in logs.text
    # The stand-in received them, base64 in the addVersion payloads, as the API defines.
    assert {k: v[-1].decode() for k, v in state.secrets[PROJECT].items()} == values


# -- the Secret Manager client, against a fault-injecting loopback stand-in ----------------------------------


@dataclass
class _Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: Any


@dataclass
class _State:
    """What the stand-in holds and how it misbehaves: `faults` are consumed in order by the first request
    they match (method, path regexp) and answer (status, headers, body) or stall."""

    secrets: dict[str, dict[str, list[bytes]]] = field(default_factory=dict)  # project -> id -> versions
    requests: list[_Recorded] = field(default_factory=list)
    faults: list[tuple[str, str, Any]] = field(default_factory=list)
    page_size: int = 100
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class SecretManagerStandIn(BaseHTTPRequestHandler):
        """Answers projects.secrets.{list,create,addVersion} and versions.get as the REST reference shows
        them; it is a stand-in for fault injection, not a Secret Manager."""

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with state.lock:
                state.requests.append(
                    _Recorded(
                        self.command,
                        parts.path,
                        parse_qs(parts.query),
                        self.headers.get("Authorization"),
                        body,
                    )
                )
                fault = next(
                    (f for f in state.faults if f[0] == self.command and re.search(f[1], parts.path)), None
                )
                if fault is not None:
                    state.faults.remove(fault)
            if fault is not None:
                if fault[2] == "stall":
                    state.release.wait(30)
                    return
                code, headers, fault_body = fault[2]
                self._send(code, fault_body, headers)
                return
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._send(
                    401, _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                )
                return
            self._route(parts.path, parse_qs(parts.query), body)

        def _route(self, path: str, query: dict[str, list[str]], body: Any) -> None:
            m = re.fullmatch(r"/v1/projects/([^/]+)/secrets", path)
            if m and self.command == "GET":
                ids = sorted(state.secrets.get(m[1], {}))
                start = int(query.get("pageToken", ["0"])[0])
                page = ids[start : start + state.page_size]
                answer: dict[str, Any] = {
                    "secrets": [{"name": f"projects/123456789/secrets/{i}"} for i in page],
                    "totalSize": len(ids),
                }
                if start + state.page_size < len(ids):
                    answer["nextPageToken"] = str(start + state.page_size)
                self._send(200, answer)
                return
            if m and self.command == "POST":
                secret_id = query["secretId"][0]
                project = state.secrets.setdefault(m[1], {})
                if body != {"replication": {"automatic": {}}}:
                    self._send(400, _error(400, "INVALID_ARGUMENT", "replication"))
                elif secret_id in project:
                    self._send(409, _error(409, "ALREADY_EXISTS", f"Secret [{secret_id}] already exists."))
                else:
                    project[secret_id] = []
                    self._send(200, {"name": f"projects/123456789/secrets/{secret_id}", **body})
                return
            m = re.fullmatch(r"/v1/projects/([^/]+)/secrets/([^/:]+):addVersion", path)
            if m and self.command == "POST":
                versions = state.secrets.get(m[1], {}).get(m[2])
                if versions is None:
                    self._send(404, _error(404, "NOT_FOUND", "Secret not found"))
                    return
                versions.append(base64.b64decode(body["payload"]["data"]))
                self._send(
                    200,
                    {
                        "name": f"projects/123456789/secrets/{m[2]}/versions/{len(versions)}",
                        "state": "ENABLED",
                    },
                )
                return
            m = re.fullmatch(r"/v1/projects/([^/]+)/secrets/([^/]+)/versions/latest", path)
            if m and self.command == "GET":
                versions = state.secrets.get(m[1], {}).get(m[2])
                if not versions:
                    self._send(404, _error(404, "NOT_FOUND", "no versions"))
                else:
                    self._send(
                        200,
                        {
                            "name": f"projects/123456789/secrets/{m[2]}/versions/{len(versions)}",
                            "state": "ENABLED",
                        },
                    )
                return
            self._send(404, _error(404, "NOT_FOUND", "no such method"))

        do_GET = do_POST = _handle

    return SecretManagerStandIn


def _serve(state: _State | None = None) -> tuple[LoopbackHTTPServer, _State]:
    state = state or _State()
    return LoopbackHTTPServer(_handler(state), name="secret-manager-stand-in").start(), state


def _client(
    server: LoopbackHTTPServer,
    *,
    sleeps: list[float] | None = None,
    bounds: NetworkBounds | None = None,
    token: str = TOKEN,
) -> gsm.SecretManagerClient:
    sleep: Callable[[float], None] = sleeps.append if sleeps is not None else time.sleep
    return gsm.SecretManagerClient(
        SecretStr(token), endpoint=server.url, bounds=bounds, backoff=0.01, sleep=sleep
    )


@pytest.mark.unit
def test_apply_sends_what_the_rest_api_defines_and_a_second_run_keeps_everything() -> None:
    server, state = _serve()
    try:
        client = gsm.SecretManagerClient.from_environment(
            {gsm.TOKEN_ENV: TOKEN, gsm.ENDPOINT_ENV: server.url}
        )
        with client:
            required = _required("litellm-master-key", "litellm-salt-key")
            existing = gsm.existing_for(required, client)
            assert existing == set()
            first = plan(required, existing, set(), environ={})
            values = _values(first)
            result = gsm.apply(first, client)
            assert result.created == ["litellm-master-key", "litellm-salt-key"] and result.projects == [
                PROJECT
            ]
            creates = [r for r in state.requests if r.method == "POST" and r.path.endswith("/secrets")]
            assert [(r.path, r.query, r.body) for r in creates] == [
                (f"/v1/projects/{PROJECT}/secrets", {"secretId": [key]}, {"replication": {"automatic": {}}})
                for key in ("litellm-master-key", "litellm-salt-key")
            ]
            adds = [r for r in state.requests if r.path.endswith(":addVersion")]
            assert [r.path for r in adds] == [
                f"/v1/projects/{PROJECT}/secrets/{key}:addVersion"
                for key in ("litellm-master-key", "litellm-salt-key")
            ]
            assert [base64.b64decode(r.body["payload"]["data"]).decode() for r in adds] == [
                values["litellm-master-key"],
                values["litellm-salt-key"],
            ]
            assert {r.authorization for r in state.requests} == {f"Bearer {TOKEN}"}
            # Second run: everything has a value; nothing is sent but reads.
            before = len(state.requests)
            second = plan(required, gsm.existing_for(required, client), set(), environ={})
            again = gsm.apply(second, client)
            assert again.kept == ["litellm-master-key", "litellm-salt-key"] and not again.created
            assert {r.method for r in state.requests[before:]} == {"GET"}
            # A rotation adds a version and creates nothing.
            gsm.apply(
                plan(
                    required, {"litellm-master-key", "litellm-salt-key"}, {"litellm-master-key"}, environ={}
                ),
                client,
            )
            assert len(state.secrets[PROJECT]["litellm-master-key"]) == 2
            assert len(state.secrets[PROJECT]["litellm-salt-key"]) == 1
    finally:
        server.stop()


@pytest.mark.unit
def test_a_secret_created_meanwhile_409_still_gets_the_value_and_one_without_a_version_is_missing() -> None:
    server, state = _serve()
    try:
        with _client(server) as client:
            required = _required("litellm-master-key")
            p = plan(required, gsm.existing_for(required, client), set(), environ={})
            state.secrets[PROJECT] = {"litellm-master-key": []}  # someone else created it, no version yet
            assert gsm.existing_for(required, client) == set()  # listed, but no value: still to create
            result = gsm.apply(p, client)
            assert result.created == ["litellm-master-key"]
            assert [r.method for r in state.requests if "secretId" in r.query] == ["POST"]
            assert state.secrets[PROJECT]["litellm-master-key"] == [_values(p)["litellm-master-key"].encode()]
    finally:
        server.stop()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("code", "status", "words"),
    [(401, "UNAUTHENTICATED", "missing or expired"), (403, "PERMISSION_DENIED", "permission")],
)
def test_a_refused_token_is_the_users_error_naming_the_secret_and_status(
    code: int, status: str, words: str
) -> None:
    state = _State(
        faults=[
            ("POST", r"/secrets$", (code, {}, _error(code, status, "The caller does not have permission")))
        ]
    )
    server, state = _serve(state)
    try:
        with _client(server) as client, pytest.raises(gsm.SecretManagerAuthError) as err:
            client.create_secret(PROJECT, "litellm-master-key")
    finally:
        server.stop()
    message = str(err.value)
    assert "\n" not in message and err.value.exit_code == 2 and isinstance(err.value, InputError)
    assert "litellm-master-key" in message and f"HTTP {code} {status}" in message and words in message
    assert gsm.TOKEN_ENV in message and TOKEN not in message
    assert len(state.requests) == 1  # not retried
    with pytest.raises(InputError) as missing:
        gsm.SecretManagerClient.from_environment({})
    assert gsm.TOKEN_ENV in str(missing.value) and "gcloud auth print-access-token" in str(missing.value)


@pytest.mark.unit
def test_429_honours_retry_after_and_503_is_retried_until_it_succeeds() -> None:
    busy = (429, {"Retry-After": "2"}, _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"))
    down = (503, {}, _error(503, "UNAVAILABLE", "The service is currently unavailable."))
    server, state = _serve(_State(faults=[("GET", r"/secrets$", busy), ("GET", r"/secrets$", down)]))
    sleeps: list[float] = []
    try:
        with _client(server, sleeps=sleeps) as client:
            assert client.list_secrets(PROJECT) == []
    finally:
        server.stop()
    assert len(state.requests) == 3 and sleeps[0] >= 2.0 and len(sleeps) == 2
    # A Retry-After beyond the bound gives up at once, as a service error naming what was asked.
    server, state = _serve(
        _State(
            faults=[
                (
                    "POST",
                    r":addVersion$",
                    (429, {"Retry-After": "3600"}, _error(429, "RESOURCE_EXHAUSTED", "Quota")),
                )
            ]
        )
    )
    try:
        with _client(server, sleeps=[]) as client, pytest.raises(gsm.SecretManagerError) as err:
            client.add_version(PROJECT, "litellm-salt-key", SecretStr("never-shown-value"))
    finally:
        server.stop()
    assert not isinstance(err.value, InputError) and err.value.exit_code == 1 and err.value.status == 429
    assert "litellm-salt-key" in str(err.value) and "3600" in str(err.value)
    assert "never-shown-value" not in str(err.value) and len(state.requests) == 1


@pytest.mark.unit
def test_a_service_that_stays_down_is_a_service_error_after_the_retries() -> None:
    down = (503, {}, _error(503, "UNAVAILABLE", "The service is currently unavailable."))
    server, state = _serve(_State(faults=[("POST", r"/secrets$", down)] * 10))
    try:
        with _client(server, sleeps=[]) as client, pytest.raises(gsm.SecretManagerError) as err:
            client.create_secret(PROJECT, "oauth2-proxy-cookie-secret")
    finally:
        server.stop()
    message = str(err.value)
    assert err.value.exit_code == 1 and err.value.reason == "UNAVAILABLE" and "\n" not in message
    assert (
        "oauth2-proxy-cookie-secret" in message
        and "HTTP 503 UNAVAILABLE" in message
        and "gave up after 5 attempts" in message
    )
    assert len(state.requests) == 5


@pytest.mark.unit
def test_a_stalled_server_times_out_within_the_bounds() -> None:
    server, state = _serve(_State(faults=[("GET", r"/secrets$", "stall")] * 5))
    bounds = NetworkBounds.from_timeout(0.5)  # answers within 0.5 s; retry budget 0.75 s
    started = time.monotonic()
    try:
        with _client(server, bounds=bounds) as client, pytest.raises(gsm.SecretManagerError) as err:
            client.list_secrets(PROJECT)
    finally:
        state.release.set()
        server.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert (
        "stalled" in str(err.value)
        and f"project {PROJECT}" in str(err.value)
        and err.value.reason == "Timeout"
    )
    assert "retry budget" in str(err.value)


@pytest.mark.unit
def test_list_follows_next_page_token() -> None:
    ids = [f"secret-{i}" for i in range(7)]
    server, state = _serve(_State(secrets={PROJECT: {i: [b"v"] for i in ids}}, page_size=3))
    try:
        with _client(server) as client:
            assert client.list_secrets(PROJECT) == ids
    finally:
        server.stop()
    assert [r.query.get("pageToken") for r in state.requests] == [None, ["3"], ["6"]]
    assert all(r.query["pageSize"] == [str(gsm.PAGE_SIZE)] for r in state.requests)


@pytest.mark.unit
def test_ids_are_checked_before_any_request() -> None:
    client = gsm.SecretManagerClient(SecretStr(TOKEN), endpoint="http://127.0.0.1:9")
    with pytest.raises(InputError) as err:
        client.create_secret(PROJECT, "bad/id")
    assert "bad/id" in str(err.value)
    with pytest.raises(InputError):
        client.list_secrets("Not_A_Project")
    assert isinstance(err.value, PlatformError)

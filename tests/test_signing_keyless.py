"""Keyless signing (`--keyless`) and verification (`--certificate-identity`), up to the boundary this machine
has: no Fulcio, Rekor, TUF repository or CI OIDC provider can be reached from here, so a real keyless
signature is never made in these tests (the note says how a user makes one).

What runs for real: the identity-token discovery (`$SIGSTORE_ID_TOKEN`, GitHub Actions' ambient credential);
sigstore-python's Fulcio client against loopback fault servers, named as such, that refuse, answer 401 (echoing
the bearer token back, as a hostile server would) or stall; the client trust config of a private instance
(here: Sigstore's production trusted root as sigstore-python ships it, with the Fulcio URL pointed at the fault
server); the keyless verifier (sigstore-python's, offline against that root) on the bundles a real
docker-registry holds; the bump gate configured for a keyless identity. In every failure nothing reaches the
registry, and no token appears in stdout, stderr or the registry.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import jwt
import pytest

from llm_platform.signing import SIGNING_KEY_ENV, SIGNING_KEY_PASSWORD_ENV
from llm_platform.signing.keyless import TOKEN_ENV
from tests.support.bump_fixture import commit_all, git, write_tree
from tests.support.images import BaseLayout
from tests.support.loopback import LoopbackHTTPServer
from tests.support.registry import Registry
from tests.test_signed_publish_and_bump import _model, _repo
from tests.test_signing import PASSWORD, Published, cli, make_keys, publish, sign

AMBIENT_ENV = (
    "GITHUB_ACTIONS",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
)
IDENTITY = "https://github.com/example/llm-platform/.github/workflows/deploy.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture(autouse=True)
def no_ambient_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test decides what OIDC environment there is (CI runners may set some of these)."""
    for name in (*AMBIENT_ENV, TOKEN_ENV, SIGNING_KEY_ENV):
        monkeypatch.delenv(name, raising=False)


def identity_token(canary: str) -> str:
    """A token shaped as Fulcio takes one (iss, aud `sigstore`, sub, iat, exp); its signature is not checked
    client-side (sigstore-python forwards it to Fulcio), and `canary` runs through it."""
    now = int(time.time())
    claims = {"iss": "https://issuer.invalid", "aud": "sigstore", "sub": canary, "iat": now, "exp": now + 600}
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


def trust_config(path: Path, fulcio_url: str) -> Path:
    """A private instance's client trust config: the production trusted root and signing config as
    sigstore-python ships them, with Fulcio at `fulcio_url`."""
    import sigstore._store as store

    shipped = Path(store.__file__).parent / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    signing = json.loads((shipped / "signing_config.v0.2.json").read_text())
    for entry in signing["caUrls"]:
        entry["url"] = fulcio_url
    path.write_text(
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                "trustedRoot": json.loads((shipped / "trusted_root.json").read_text()),
                "signingConfig": signing,
            }
        )
    )
    return path


class _EchoingRefusal(BaseHTTPRequestHandler):
    """Fault server: 401 on everything, its body echoing the request's Authorization header."""

    def _refuse(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"message": f"denied: {self.headers.get('Authorization')}"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[LoopbackHTTPServer]:
    server = LoopbackHTTPServer(_EchoingRefusal, name="fault-401").start()
    yield server
    server.stop()


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """Fault server: accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def referrers_tag_exists(registry: Registry, published: Published) -> bool:
    tag = published.digest.replace(":", "-")
    request = urllib.request.Request(
        f"{registry.url}/v2/{published.repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
        return False
    return True


def sign_keyless(
    capsys: pytest.CaptureFixture[str], published: Published, *extra: str
) -> tuple[int, str, str]:
    capsys.readouterr()  # what publishing the image logged
    return cli(
        capsys,
        "modelcar",
        "sign",
        published.reference,
        "--spec",
        str(published.model.spec),
        "--keyless",
        *extra,
    )


def test_keyless_without_an_identity_token_exits_2_and_pushes_nothing(
    tmp_path: Path, registry: Registry, busybox_layout: BaseLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    published = publish(tmp_path, registry, busybox_layout)
    code, out, err = sign_keyless(capsys, published)
    assert code == 2 and out == ""
    assert err == (
        f"llm-platform: error: --keyless: no OIDC identity token: set ${TOKEN_ENV}, or run where the CI provides "
        "one (GitHub Actions: `permissions: id-token: write`; GitLab: an `id_tokens` entry with `aud: sigstore`)\n"
    )
    assert not referrers_tag_exists(registry, published)

    # publish --keyless checks the same before its first push: the repository stays empty.
    spec, source, repository = _model(tmp_path, registry, "keyless-publish")
    capsys.readouterr()
    code, out, err = cli(
        capsys, "modelcar", "publish", str(spec), "--source-dir", str(source), "--base", busybox_layout.ref,
        "--to", repository, "--keyless",
    )  # fmt: skip
    assert code == 2 and out == "" and "no OIDC identity token" in err
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{registry.url}/v2/modelcars/keyless-publish/tags/list", timeout=10)
    assert missing.value.code == 404


def test_a_malformed_or_expired_token_is_refused_without_being_echoed(
    tmp_path: Path, registry: Registry, busybox_layout: BaseLayout, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    published = publish(tmp_path, registry, busybox_layout)
    canary = "canary-oidc-5e0b7d"
    now = int(time.time())
    expired = jwt.encode(
        {
            "iss": "https://issuer.invalid",
            "aud": "sigstore",
            "sub": canary,
            "iat": now - 900,
            "exp": now - 300,
        },
        "k" * 32,
        algorithm="HS256",
    )
    other_audience = jwt.encode(
        {"iss": "https://issuer.invalid", "aud": "someone", "sub": canary, "iat": now, "exp": now + 600},
        "k" * 32,
        algorithm="HS256",
    )
    for token in (f"{canary}.not.a-jwt", expired, other_audience):
        monkeypatch.setenv(TOKEN_ENV, token)
        code, out, err = sign_keyless(capsys, published)
        assert code == 2 and out == "", err
        assert err.startswith(f"llm-platform: error: --keyless: ${TOKEN_ENV} is not a usable identity token")
        assert err.count("\n") == 1 and canary not in err and token not in err
    assert not referrers_tag_exists(registry, published)


def test_github_ambient_credential_failures_are_one_line_without_the_request_token(
    tmp_path: Path, registry: Registry, busybox_layout: BaseLayout, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, refusing_server: LoopbackHTTPServer,
) -> None:  # fmt: skip
    published = publish(tmp_path, registry, busybox_layout)
    canary = "canary-actions-request-token-41c9"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", canary)
    errors = []
    for url in (f"{refusing_server.url}/token", f"http://127.0.0.1:{free_port()}/token"):
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", url)
        code, out, err = sign_keyless(capsys, published)
        assert code == 1 and out == "", err
        assert (
            err.startswith("llm-platform: error: keyless ambient OIDC credential: ") and err.count("\n") == 1
        )
        assert canary not in err, err
        errors.append(err)
    assert "401" in errors[0]  # the refusal is reported, the token it echoed is not
    assert not referrers_tag_exists(registry, published)


@pytest.mark.parametrize("fault", ["refused", "401", "stalled"])
def test_fulcio_faults_end_in_one_line_within_the_bounds_and_push_nothing(
    fault: str, tmp_path: Path, registry: Registry, busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    refusing_server: LoopbackHTTPServer, stalled_port: int,
) -> None:  # fmt: skip
    published = publish(tmp_path, registry, busybox_layout)
    canary = "canary-fulcio-subject-a7e2"
    token = identity_token(canary)
    monkeypatch.setenv(TOKEN_ENV, token)
    fulcio = {
        "refused": f"http://127.0.0.1:{free_port()}",
        "401": refusing_server.url,
        "stalled": f"http://127.0.0.1:{stalled_port}",
    }[fault]
    config = trust_config(tmp_path / "trust.json", fulcio)
    started = time.monotonic()
    code, out, err = sign_keyless(capsys, published, "--sigstore-trust-config", str(config), "--timeout", "2")
    elapsed = time.monotonic() - started
    assert code == 1 and out == "", err
    assert (
        err.startswith("llm-platform: error: keyless signing certificate (Fulcio): ") and err.count("\n") == 1
    )
    assert elapsed < 15, elapsed
    if fault == "stalled":
        assert "no answer within 3 s" in err
    if fault == "refused":
        assert "127.0.0.1" in err  # the server is named
    assert canary not in err and token not in err
    assert not referrers_tag_exists(registry, published)


def test_keyless_verification_refuses_key_signed_and_unsigned_images_offline(
    tmp_path: Path, registry: Registry, busybox_layout: BaseLayout, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv(SIGNING_KEY_PASSWORD_ENV, PASSWORD)
    published = publish(tmp_path, registry, busybox_layout)
    config = trust_config(tmp_path / "trust.json", "http://127.0.0.1:9")  # verification never contacts Fulcio
    keyless = ("--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER)
    verify = ("modelcar", "verify", published.reference, *keyless, "--sigstore-trust-config", str(config))
    capsys.readouterr()

    code, out, err = cli(capsys, *verify)
    assert code == 1, err
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "FAILED signature", "FAILED oms", "FAILED provenance", "FAILED modelpack", "FAILED referrers",
    ]  # fmt: skip

    sign(capsys, published, make_keys(tmp_path / "keys"))
    code, out, err = cli(capsys, *verify, "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["key_id"] is None and report["identity"] == IDENTITY
    checks = {check["name"]: check for check in report["checks"]}
    # The key's bundles are there but carry no Fulcio certificate for the identity: refused, not skipped.
    assert not checks["oms"]["ok"] and f"does not verify for identity {IDENTITY}" in checks["oms"]["message"]
    assert not checks["provenance"]["ok"]
    assert not checks["signature"]["ok"] and "sigstore.dev/cosign/sign/v1" in checks["signature"]["message"]
    assert checks["modelpack"]["ok"]  # unsigned by design: it names the blobs, the OMS bundle signs them
    assert not checks["referrers"]["ok"] and "lists no signature" in checks["referrers"]["message"]


def test_keyless_option_errors_exit_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = "127.0.0.1:1/modelcars/m@sha256:" + "a" * 64
    keys = make_keys(tmp_path / "keys")
    bad_config = tmp_path / "bad.json"
    bad_config.write_text('{"mediaType": "something else"}')
    cases = {
        ("verify", ref): "give --key, or --certificate-identity with --certificate-oidc-issuer",
        ("verify", ref, "--key", str(keys.public), "--certificate-identity", IDENTITY): (
            "give --key, or --certificate-identity with --certificate-oidc-issuer"
        ),
        ("verify", ref, "--certificate-identity", IDENTITY): (
            "keyless verification needs both --certificate-identity and --certificate-oidc-issuer"
        ),
        ("verify", ref, "--key", str(keys.public), "--sigstore-trust-config", str(bad_config)): (
            "--sigstore-trust-config applies to keyless verification only"
        ),
        (
            "verify", ref, "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER,
            "--sigstore-trust-config", str(bad_config),
        ): f"{bad_config}: not a Sigstore client trust config",
        ("sign", ref, "--spec", "m.yaml", "--keyless", "--key", str(keys.private)): (
            "--keyless and a signing key: give one of them"
        ),
        ("sign", ref, "--spec", "m.yaml", "--key", str(keys.private), "--sigstore-trust-config", "t.json"): (
            "--sigstore-trust-config applies to --keyless only"
        ),
    }  # fmt: skip
    for args, message in cases.items():
        code, out, err = cli(capsys, "modelcar", *args)
        assert code == 2 and out == "", (args, err)
        assert err.startswith(f"llm-platform: error: {message}") and err.count("\n") == 1, (args, err)


def test_a_bump_gated_on_a_keyless_identity_refuses_a_key_signed_digest_and_commits_nothing(
    tmp_path: Path, registry: Registry, busybox_layout: BaseLayout, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from llm_platform.modelcar.prepare import SourceOptions
    from llm_platform.modelcar.publish import PushOptions, publish_modelcar

    monkeypatch.setenv(SIGNING_KEY_PASSWORD_ENV, PASSWORD)
    spec, source, repository = _model(tmp_path, registry, "gated-keyless")
    keys = make_keys(tmp_path / "keys")
    reference = publish_modelcar(
        SourceOptions(spec=spec, source_dir=source, base=busybox_layout.ref), PushOptions(target=repository)
    ).reference
    code, _, err = cli(capsys, "modelcar", "sign", reference, "--spec", str(spec), "--key", str(keys.private))
    assert code == 0, err
    root, env = _repo(tmp_path, spec, repository)
    trust_config(root / "sigstore-trust.json", "http://127.0.0.1:9")
    write_tree(
        root,
        {
            "modelcars/signing.yaml": (
                f"keyless:\n  identity: {IDENTITY}\n  issuer: {ISSUER}\n  trust_config: sigstore-trust.json\n"
            )
        },
    )
    commit_all(root, "keyless signing expected", env)
    head = git(root, "rev-parse", "HEAD", env=env)
    bump = ("bump", "--model", "gated-keyless", "--repo", str(root), "--commit", "--ref", reference)
    code, out, err = cli(capsys, *bump)
    assert code == 1 and out == "", err
    assert f"does not verify with identity {IDENTITY} (issuer {ISSUER}), nothing was written" in err
    assert git(root, "rev-parse", "HEAD", env=env) == head
    assert git(root, "status", "--porcelain", env=env) == ""

    # The key it was signed with verifies it: the gate is what changed, not the image.
    code, _, err = cli(capsys, "bump", "--model", "gated-keyless", "--repo", str(root), "--ref", reference,
                       "--verify-key", str(keys.public))  # fmt: skip
    assert code == 0, err

    (root / "modelcars/signing.yaml").write_text(
        f"verify_key: k.pub\nkeyless:\n  identity: {IDENTITY}\n  issuer: {ISSUER}\n"
    )
    code, _, err = cli(capsys, *bump)
    assert code == 2 and "modelcars/signing.yaml: (top level): Value error, give exactly one of" in err, err

"""A tiny Docker token-auth server (the bearer challenge flow) for a real docker-registry on 127.0.0.1.

It signs RS256 JWTs with a throw-away key whose self-signed certificate the registry trusts
(`auth.token.rootcertbundle`); the key travels in the `x5c` header, which docker/distribution verifies
against that bundle. Users authenticate with HTTP basic auth on the token endpoint; anonymous callers may
be granted pull only.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support.loopback import LoopbackHTTPServer

SERVICE = "llm-platform-test-registry"
ISSUER = "llm-platform-test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    root: Path
    users: dict[str, str] = field(default_factory=lambda: {"pusher": "s3cret-pass"})
    anonymous_pull: bool = False
    requests: list[dict[str, object]] = field(
        default_factory=list
    )  # what was asked, by whom, what was granted

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llm-platform test token signer")])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = self.root / "token-signer.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._http: LoopbackHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> TokenServer:
        self._http = LoopbackHTTPServer(self._handler(), name="token-server").start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    @property
    def realm(self) -> str:
        assert self._http is not None, "start() first"
        return f"{self._http.url}/token"

    def registry_config(self) -> str:
        """The `auth:` block for `Registry(extra_config=...)`."""
        return (
            "auth:\n  token:\n"
            f"    realm: {self.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {self.cert_path}\n"
        )

    # -- tokens ---------------------------------------------------------------------------------------
    def _sign(self, subject: str, access: list[dict[str, object]]) -> str:
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 600,
            "nbf": now - 30,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def _grant(self, user: str | None, scopes: list[str]) -> list[dict[str, object]]:
        access: list[dict[str, object]] = []
        for scope in scopes:
            for item in scope.split(" "):
                kind, _, rest = item.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind != "repository" or not name:
                    continue
                wanted = [a for a in actions.split(",") if a]
                allowed = wanted if user else [a for a in wanted if a == "pull" and self.anonymous_pull]
                access.append({"type": "repository", "name": name, "actions": allowed})
        return access

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path != "/token":
                    self.send_error(404)
                    return
                query = parse_qs(url.query)
                user: str | None = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if server.users.get(name) != password:
                        server.requests.append(
                            {"user": name, "scopes": query.get("scope", []), "granted": None}
                        )
                        self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                        return
                    user = name
                access = server._grant(user, query.get("scope", []))
                server.requests.append({"user": user, "scopes": query.get("scope", []), "granted": access})
                token = server._sign(user or "", access)
                self._reply(200, {"token": token, "access_token": token, "expires_in": 600})

            def _reply(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

"""A real OCI registry (Debian's docker-registry, the CNCF distribution reference) on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.tools import require_tool, run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    """One docker-registry process; stop() and start() keep its storage, so a test can kill it mid-push."""

    root: Path
    port: int = field(default_factory=free_port)
    htpasswd: tuple[str, str] | None = None  # (user, password): basic auth when set
    extra_config: str = ""
    wrapper: list[str] = field(default_factory=list)  # e.g. ["taskset", "-c", "0"] (the publish bench)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def blob_path(self, digest: str) -> Path:
        """Where the registry's filesystem driver keeps the bytes of `digest`."""
        hex_digest = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    def _config(self) -> Path:
        auth = ""
        if self.htpasswd:
            user, password = self.htpasswd
            htpasswd_file = self.root / "htpasswd"
            line = run([require_tool("htpasswd"), "-Bbn", user, password]).stdout.strip()
            htpasswd_file.write_text(line + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: test-registry\n    path: {htpasswd_file}\n"
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
            f"{auth}{self.extra_config}"
        )
        return config

    def start(self, timeout: float = 20.0) -> Registry:
        binary = require_tool("docker-registry", "registry")
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.wrapper, binary, "serve", str(self._config())], stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited at start:\n{self.log_path.read_text()}")
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # 401 from an auth-enabled registry: it is up
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not answer on {self.url}:\n{self.log_path.read_text()}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None

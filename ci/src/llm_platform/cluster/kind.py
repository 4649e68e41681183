"""The throwaway cluster of `kind-test`: a kind cluster (the adapter to the `kind` CLI), or a cluster the
caller already has (the k3s service of `dagger call kind-test`), behind one small `Throwaway` protocol.

The kind cluster runs the node image pinned in `images.KIND_NODE`, with its kubeconfig in a file of our own
(never the user's ~/.kube/config), on Docker or Podman (kind's KIND_EXPERIMENTAL_PROVIDER). What the
cluster is made of (`cluster_config`) and the command lines are pure and tested; the CLI calls are not
runnable on a machine without a container engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from llm_platform import images
from llm_platform.documents import cut
from llm_platform.errors import InputError, PlatformError
from llm_platform.logs import get_logger

log = get_logger("cluster")

DEFAULT_NAME = "llm-platform-kind-test"
KIND_VERSION = "v0.33.0"  # the release that built images.KIND_NODE; scripts/tools.lock pins its binary
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_CREATE_TIMEOUT = 600.0
_CALL_TIMEOUT = 120.0


class Throwaway(Protocol):
    """A cluster to test on: made (or found), its kubeconfig, and removed again."""

    name: str

    def create(self) -> bool:
        """Make the cluster (False: it was there already and is reused)."""
        ...

    def kubeconfig(self) -> Path: ...

    def delete(self) -> None: ...


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InputError(f"--name: {cut(name, 60)!r} is not a cluster name (lowercase letters, digits, '-')")
    return name


def cluster_config() -> dict[str, Any]:
    """One node, the pinned image. Image volumes (what the modelcars mount as) are beta and on by default in
    Kubernetes 1.35, and the node image's containerd 2 serves them; nothing to switch on."""
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [{"role": "control-plane", "image": images.KIND_NODE}],
    }


def create_argv(kind: str, name: str, kubeconfig: Path) -> list[str]:
    return [
        kind,
        "create",
        "cluster",
        "--name",
        name,
        "--kubeconfig",
        str(kubeconfig),
        "--wait",
        "180s",
        "--config",
        "-",
    ]


def delete_argv(kind: str, name: str, kubeconfig: Path) -> list[str]:
    return [kind, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)]


def provider_env(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """kind's provider: Docker, or Podman (KIND_EXPERIMENTAL_PROVIDER=podman) when only podman is there."""
    env = dict(environ)
    if env.get("KIND_EXPERIMENTAL_PROVIDER"):
        return env
    if shutil.which("docker", path=env.get("PATH")) is None and shutil.which("podman", path=env.get("PATH")):
        env["KIND_EXPERIMENTAL_PROVIDER"] = "podman"
    return env


@dataclass
class KindCluster:
    """A kind cluster named `name`, its kubeconfig at `kubeconfig`. `reuse` takes one that exists."""

    name: str
    kubeconfig_path: Path
    reuse: bool = False
    binary: str | None = None

    def _kind(self) -> str:
        kind = self.binary or shutil.which("kind")
        if kind is None:
            raise PlatformError(
                f"kind is not on PATH: install kind {KIND_VERSION} (https://kind.sigs.k8s.io), which runs the "
                "cluster on Docker or Podman"
            )
        return kind

    def _run(self, argv: list[str], what: str, timeout: float, stdin: bytes | None = None) -> str:
        env = provider_env(os.environ)
        if (
            env.get("KIND_EXPERIMENTAL_PROVIDER") != "podman"
            and shutil.which("docker", path=env.get("PATH")) is None
        ):
            raise PlatformError(f"{what}: kind needs Docker or Podman, and neither is on PATH")
        try:
            proc = subprocess.run(
                argv, input=stdin, capture_output=True, check=False, timeout=timeout, env=env
            )
        except subprocess.TimeoutExpired:
            raise PlatformError(f"{what}: kind gave no answer within {timeout:.0f} s") from None
        except OSError as exc:
            raise PlatformError(f"{what}: cannot run kind: {exc.strerror}") from None
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
            raise PlatformError(
                f"{what}: {cut(lines[-1] if lines else f'kind exited {proc.returncode}', 400)}"
            )
        return proc.stdout.decode("utf-8", "replace")

    def exists(self) -> bool:
        out = self._run([self._kind(), "get", "clusters"], "kind get clusters", _CALL_TIMEOUT)
        return self.name in out.split()

    def create(self) -> bool:
        kind = self._kind()
        if self.exists():
            if not self.reuse:
                raise InputError(
                    f"--name {self.name}: a kind cluster of that name exists; pass --reuse to test on it, or "
                    f"`kind delete cluster --name {self.name}`"
                )
            self._run(
                [
                    kind,
                    "export",
                    "kubeconfig",
                    "--name",
                    self.name,
                    "--kubeconfig",
                    str(self.kubeconfig_path),
                ],
                "kind export kubeconfig",
                _CALL_TIMEOUT,
            )
            return False
        config = yaml.safe_dump(cluster_config(), sort_keys=False).encode()
        log.info("kind-test: creating kind cluster %s (%s)", self.name, images.KIND_NODE)
        self._run(
            create_argv(kind, self.name, self.kubeconfig_path), "kind create cluster", _CREATE_TIMEOUT, config
        )
        return True

    def kubeconfig(self) -> Path:
        return self.kubeconfig_path

    def delete(self) -> None:
        log.info("kind-test: deleting kind cluster %s", self.name)
        self._run(
            delete_argv(self._kind(), self.name, self.kubeconfig_path), "kind delete cluster", _CALL_TIMEOUT
        )


@dataclass
class GivenCluster:
    """A cluster the caller made and will remove (the k3s service of `dagger call kind-test`)."""

    kubeconfig_path: Path
    name: str = "given"

    def create(self) -> bool:
        if not self.kubeconfig_path.is_file():
            raise InputError(f"--kubeconfig {self.kubeconfig_path}: no such file")
        return False

    def kubeconfig(self) -> Path:
        return self.kubeconfig_path

    def delete(self) -> None:
        """Not ours to delete."""

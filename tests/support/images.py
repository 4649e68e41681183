"""Test images and a private podman: a KServe-capable base image made from Debian's busybox-static
with umoci (an independent tool, not our code), multi-platform variants of it, and podman running
with its own storage under a temp dir so tests don't touch (or race) anyone else's containers.

Fixtures (import them into a test module or a conftest): `busybox_layout` (session-scoped OCI
layout `oci:<dir>:base`), `multiplatform_layout`, `podman`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.tools import require_tool, run

BASE_TAG = "base"
# What KServe's modelcar sidecar and init container run (sh, ln, sleep, [, ls, echo), plus what tests read with.
APPLETS = (
    "sh",
    "ln",
    "sleep",
    "ls",
    "[",
    "test",
    "echo",
    "cat",
    "sha256sum",
    "readlink",
    "find",
    "wc",
    "true",
)
BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class BaseLayout:
    """An OCI layout holding the busybox base image under tag `base`."""

    path: Path
    tag: str = BASE_TAG

    @property
    def ref(self) -> str:
        """The `--base` value for the build: oci:DIR:TAG."""
        return f"oci:{self.path}:{self.tag}"

    def manifest_digest(self, tag: str | None = None) -> str:
        index = json.loads((self.path / "index.json").read_text())
        for entry in index["manifests"]:
            if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == (tag or self.tag):
                return str(entry["digest"])
        raise AssertionError(f"tag {tag or self.tag} not in {self.path}")


def build_busybox_layout(dest: Path, *, architecture: str = "amd64") -> BaseLayout:
    """`umoci` builds an image whose rootfs is /bin/busybox plus applet links, /mnt, /tmp and /proc."""
    umoci = require_tool("umoci")
    if not BUSYBOX.is_file():
        pytest.fail("/bin/busybox not found: install Debian's busybox-static (.ci/run does)")
    run([umoci, "init", "--layout", str(dest)])
    run([umoci, "new", "--image", f"{dest}:{BASE_TAG}"])
    bundle = dest.parent / f"{dest.name}.bundle"
    run([umoci, "unpack", "--image", f"{dest}:{BASE_TAG}", str(bundle)])
    rootfs = bundle / "rootfs"
    for directory in ("bin", "mnt", "tmp", "proc", "dev", "sys", "etc"):
        (rootfs / directory).mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    run([umoci, "repack", "--image", f"{dest}:{BASE_TAG}", str(bundle)])
    run(
        [
            umoci,
            "config",
            "--image",
            f"{dest}:{BASE_TAG}",
            "--config.env",
            "PATH=/bin",
            "--config.cmd",
            "sh",
            "--architecture",
            architecture,
            "--os",
            "linux",
        ]
    )
    run([umoci, "gc", "--layout", str(dest)])
    shutil.rmtree(bundle)
    return BaseLayout(dest)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_multiplatform_layout(dest: Path, amd64: BaseLayout, arm64: BaseLayout) -> Path:
    """A layout whose only entry is an image index over an amd64 and an arm64 image (like Docker Hub's)."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    entries = []
    for layout, arch in ((amd64, "amd64"), (arm64, "arm64")):
        for blob in (layout.path / "blobs" / "sha256").iterdir():
            if not (blobs / blob.name).exists():
                shutil.copy2(blob, blobs / blob.name)
        digest = layout.manifest_digest()
        size = (layout.path / "blobs" / "sha256" / digest.removeprefix("sha256:")).stat().st_size
        platform = {"os": "linux", "architecture": arch, **({"variant": "v8"} if arch == "arm64" else {})}
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": size,
                "platform": platform,
            }
        )
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }
    ).encode()
    (blobs / _sha256_hex(index)).write_bytes(index)
    top = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": f"sha256:{_sha256_hex(index)}",
                "size": len(index),
                "annotations": {"org.opencontainers.image.ref.name": "multi"},
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(top))
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return dest


def skopeo_copy(source: str, dest: str, *extra: str) -> None:
    run([require_tool("skopeo"), "copy", "--quiet", *extra, source, dest])


def push_layout(layout: BaseLayout, registry_host: str, repository: str) -> str:
    """Copy the layout's image into a loopback registry; return the digest-pinned reference."""
    skopeo = require_tool("skopeo")
    run(
        [
            skopeo,
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            layout.ref.replace("oci:", "oci:", 1),
            f"docker://{registry_host}/{repository}:{layout.tag}",
        ]
    )
    digest = run(
        [
            skopeo,
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            f"docker://{registry_host}/{repository}:{layout.tag}",
        ]
    ).stdout.strip()
    return f"{registry_host}/{repository}@{digest}"


class Podman:
    """podman with private storage (--root/--runroot under a temp dir) and no network."""

    def __init__(self, root: Path) -> None:
        self.binary = require_tool("podman")
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        # podman refuses a runroot longer than 50 characters; pytest's tmp paths (and $TMPDIR) can be longer.
        self.runroot = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
        self.base_args = [
            self.binary,
            "--root",
            str(root / "storage"),
            "--runroot",
            str(self.runroot),
            "--tmpdir",
            str(root / "tmp"),
            "--storage-driver",
            "vfs",
        ]
        self.env = {**os.environ, "TMPDIR": str(root / "tmp")}

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.base_args, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def pull_layout(self, layout_dir: Path, tag: str) -> str:
        """Load an OCI layout image; return its image id."""
        return self("pull", "-q", f"oci:{layout_dir}:{tag}").stdout.strip().splitlines()[-1]

    def cleanup(self) -> None:
        self("pod", "rm", "-af", "-t", "0", check=False)
        self("rm", "-af", "-t", "0", check=False)
        self("system", "reset", "-f", check=False, timeout=120)
        # conmon's exit hooks (`podman container cleanup`) may still write to the runroot: let them finish.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            shutil.rmtree(self.root, ignore_errors=True)
            shutil.rmtree(self.runroot, ignore_errors=True)
            time.sleep(0.5)
            if not self.root.exists() and not self.runroot.exists():
                break


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> BaseLayout:
    """linux/amd64 busybox base image in an OCI layout (oci:DIR:base), built once per test session."""
    return build_busybox_layout(tmp_path_factory.mktemp("busybox-base") / "layout")


@pytest.fixture(scope="session")
def multiplatform_layout(tmp_path_factory: pytest.TempPathFactory, busybox_layout: BaseLayout) -> Path:
    """An OCI layout tagged `multi` holding an image index over linux/amd64 and linux/arm64/v8."""
    arm = build_busybox_layout(tmp_path_factory.mktemp("busybox-arm64") / "layout", architecture="arm64")
    return build_multiplatform_layout(
        tmp_path_factory.mktemp("busybox-multi") / "layout", busybox_layout, arm
    )


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    """A podman with storage under this test's tmp dir, torn down after the test."""
    instance = Podman(tmp_path / "podman")
    yield instance
    instance.cleanup()

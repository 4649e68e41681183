#!/usr/bin/env bash
# The test suite (the README's test command runs .ci/run, which ends here). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=/etc/containers/llm-platform-containers.conf

# CRDs for the schema tests: gitops/crds.lock.yaml, sha256-verified, from upstream or from a mirror
# directory laid out <project>/<tag>/<file> ($LLM_PLATFORM_CRDS_MIRROR). Our CI machines have no internet
# but a copy of the upstream files beside the checkout, ../shared/crds: that is the mirror when present.
# Synced once here, so a failure is one line that says how to give a mirror (not an error per test); the
# tests' own session cache syncs the same way (tests/conftest.py).
if [[ -z "${LLM_PLATFORM_CRDS_MIRROR:-}" && -d ../shared/crds ]]; then
  LLM_PLATFORM_CRDS_MIRROR=$(cd ../shared/crds && pwd -P)
  export LLM_PLATFORM_CRDS_MIRROR
fi

# Helm charts: the tests take the packages pinned in gitops/charts.lock.yaml from this mirror directory
# (packages + INDEX.json, $LLM_PLATFORM_CHARTS_MIRROR) when it is beside the checkout, ../shared/charts.
if [[ -z "${LLM_PLATFORM_CHARTS_MIRROR:-}" && -d ../shared/charts ]]; then
  LLM_PLATFORM_CHARTS_MIRROR=$(cd ../shared/charts && pwd -P)
  export LLM_PLATFORM_CHARTS_MIRROR
fi

# The pinned helm and kubectl (scripts/tools.lock, installed by scripts/setup.sh --tests) come first.
PATH="$PWD/.venv/bin:$PATH"
export PATH

# The CRDs of the lock's `charts` entries are rendered from those chart packages with the pinned helm.
.venv/bin/llm-platform crds sync >/dev/null

exec .venv/bin/python -m pytest "$@"

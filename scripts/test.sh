#!/usr/bin/env bash
# The test suite (the README's test command runs .ci/run, which ends here).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=/etc/containers/llm-platform-containers.conf
exec .venv/bin/python -m pytest "$@"

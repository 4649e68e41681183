"""`llm-platform lint gitops/` on the real reference tree, as CI runs it (with ../shared/crds).

The tree must at least parse, render and validate against every schema and CRD (CEL included):
no yaml-*, k8s-*, render-* or schema-* finding. Argo CD, policy and cross-reference findings are
reported by the lint run itself (exit 1) and tracked on the tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.tools import require_tool

_CLI = str(Path(sys.executable).with_name("llm-platform"))
_STRUCTURAL = ("yaml-", "k8s-", "render-", "schema-")


def test_reference_tree_parses_renders_and_validates(repo_root: Path, shared_dir: Path, tmp_path: Path) -> None:
    require_tool("kubectl")
    proc = subprocess.run([_CLI, "lint", "gitops", "--crds", str(shared_dir / "crds"), "--format", "json"],
                          cwd=repo_root, capture_output=True, text=True, check=False,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    structural = [f for f in report["findings"] if f["rule_id"].startswith(_STRUCTURAL)]
    assert structural == [], "\n".join(f"{f['path']}:{f['line']}: {f['rule_id']} {f['message']}" for f in structural)
    cov = report["coverage"]
    assert cov["kustomizations_rendered"] >= 4 and cov["schema_crd"] >= 20 and cov["cel_rules_evaluated"] >= 50
    assert report["exit_code"] == proc.returncode

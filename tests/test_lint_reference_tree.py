"""`llm-platform lint gitops/` on the real reference tree, as CI runs it (with the CRDs `crds sync` put in
its cache): clean, exit 0, and it really rendered the overlays and validated the custom resources with
their CEL rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.tools import require_tool

_CLI = str(Path(sys.executable).with_name("llm-platform"))


def test_reference_tree_lints_clean(repo_root: Path, crds_dir: Path, tmp_path: Path) -> None:
    require_tool("kubectl")
    proc = subprocess.run(
        [_CLI, "lint", "gitops", "--crds", str(crds_dir), "--format", "json"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
    )
    report = json.loads(proc.stdout) if proc.stdout else {"findings": []}
    findings = "\n".join(
        f"{f['path']}:{f['line']}:{f['col']}: {f['rule_id']} {f['message']}" for f in report["findings"]
    )
    assert proc.returncode == 0, findings or proc.stderr
    assert report["findings"] == []
    cov = report["coverage"]
    assert (
        cov["kustomizations_rendered"] >= 4 and cov["schema_crd"] >= 20 and cov["cel_rules_evaluated"] >= 50
    )

"""`llm-platform lint gitops/` on the real reference tree, as CI runs it (with the CRDs `crds sync` put in
its cache and the charts from the chart lock, through $LLM_PLATFORM_CHARTS_MIRROR): clean, exit 0, and it
really rendered the overlays and every Helm chart of both environments, and validated the custom resources
with their CEL rules. The only tag-pinned images are those gitops/lint.yaml accepts, each still rendered."""

from __future__ import annotations

import json
import os
import re
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
    # Every chart source of both environments rendered; none left out.
    assert len(cov["charts_rendered"]) >= 17 and cov["not_rendered"] == [], cov["not_rendered"]
    accepted = set(re.findall(r"^  - image: (\S+)$", (repo_root / "gitops" / "lint.yaml").read_text(), re.M))
    assert set(cov["accepted_unpinned_images"]) == accepted and cov["unused_accepted_images"] == []

"""The fixture corpus: the clean tree lints clean; each broken variant yields exactly its findings
(rule id, file and line), with real kubectl kustomize, the bundled Kubernetes schemas and the
upstream CRDs of gitops/crds.lock.yaml, synced by the `crds_dir` fixture (CEL rules included)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llm_platform.lint import RULES, run_lint
from tests.support.lint_fixtures import build_tree, expected, variants
from tests.support.tools import require_tool


@pytest.fixture(scope="module", autouse=True)
def _kubectl() -> None:
    require_tool("kubectl")


def _lint(repo: Path, crds_dir: Path, cache: Path):
    return run_lint([repo / "gitops"], crd_dirs=[crds_dir], cwd=repo, cache_dir=cache)


def test_clean_tree_has_no_findings(tmp_path: Path, crds_dir: Path) -> None:
    repo = build_tree(tmp_path / "repo")
    report = _lint(repo, crds_dir, tmp_path / "cache")
    assert [f.text() for f in report.findings] == []
    assert report.exit_code == 0
    cov = report.coverage
    # Everything was really checked: the overlay rendered, CRs validated against CRDs, CEL rules run.
    assert cov.kustomizations_rendered == 2
    assert cov.schema_core >= 5 and cov.schema_crd >= 15
    assert cov.cel_rules_evaluated > 10


@pytest.mark.parametrize("variant", variants())
def test_broken_variant(variant: str, tmp_path: Path, crds_dir: Path) -> None:
    repo = build_tree(tmp_path / "repo", variant)
    report = _lint(repo, crds_dir, tmp_path.parent / "lint-crd-cache")
    got = sorted({(f.rule_id, f.path, f.line) for f in report.findings})
    want = sorted({(e.rule, e.file, e.line) for e in expected(variant)})
    assert got == want, "\n".join(f.text() for f in report.findings)
    assert report.exit_code == (1 if report.errors else 0)


def test_every_rule_has_a_broken_variant() -> None:
    covered = {e.rule for v in variants() for e in expected(v)}
    assert set(RULES) - covered == set()
    assert len(variants()) >= 40


def test_application_health_check_set_through_argo_cd_chart_values(tmp_path: Path, crds_dir: Path) -> None:
    """The argo-cd Helm chart writes argocd-cm from `configs.cm`: a values file carrying the health
    check satisfies argocd-app-health-missing just like an argocd-cm manifest."""
    repo = build_tree(tmp_path / "repo", "argocd-app-health-missing")
    assert [f.rule_id for f in _lint(repo, crds_dir, tmp_path / "cache").findings] == [
        "argocd-app-health-missing"
    ]
    values = repo / "gitops" / "values" / "argocd.yaml"
    values.write_text(
        "configs:\n  cm:\n    resource.customizations.health.argoproj.io_Application: |\n"
        "      hs = {}\n      return hs\n"
    )
    assert _lint(repo, crds_dir, tmp_path / "cache").findings == []


def test_an_application_path_that_is_a_symlink_loop_is_a_finding_not_a_crash(
    tmp_path: Path, crds_dir: Path
) -> None:
    repo = build_tree(tmp_path / "repo")
    target = repo / "gitops" / "platform" / "cluster"
    shutil.rmtree(target)
    target.symlink_to(target)  # gitops/platform/cluster -> itself
    report = _lint(repo, crds_dir, tmp_path / "cache")
    rules = {f.rule_id for f in report.findings}
    assert "yaml-symlink-loop" in rules or "argocd-app-path-missing" in rules, [
        f.text() for f in report.findings
    ]
    assert report.exit_code == 1

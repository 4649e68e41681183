"""`lint --render-charts`: each Helm chart source of an Application is rendered with the pinned helm
(chart packages verified from the chart lock, through $LLM_PLATFORM_CHARTS_MIRROR), its objects are
linted like the tree's own, findings point at the Application, and renders are cached."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_platform.lint import run_lint
from llm_platform.lint.charts_lock import CHARTS_MIRROR_ENV
from llm_platform.lint.helm import HelmOptions
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parent.parent

APP = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: dex
  namespace: argocd
spec:
  project: default
  sources:
    - repoURL: https://charts.dexidp.io
      chart: dex
      targetRevision: 0.24.0
      helm:
        valueFiles:
          - $values/gitops/values/dex.yaml
{inline}    - repoURL: https://github.com/example/llm-platform.git
      targetRevision: main
      ref: values
  destination:
    server: https://kubernetes.default.svc
    namespace: identity
"""

VALUES = """\
# our dex values
image:
  tag: v2.44.0-deliberate
"""


@pytest.fixture
def mirror() -> Path:
    value = os.environ.get(CHARTS_MIRROR_ENV)
    if not value:
        pytest.fail(  # nothing may skip: without a mirror these tests cannot run, say how to give one
            f"${CHARTS_MIRROR_ENV} is not set (scripts/test.sh sets it from ../shared/charts when that is "
            "beside the checkout)",
            pytrace=False,
        )
    return Path(value)


@pytest.fixture
def helm_log(tmp_path: Path) -> tuple[str, Path]:
    """A helm on PATH's behalf that records each invocation, then runs the pinned helm."""
    require_tool("helm")
    real = shutil.which("helm")
    assert real is not None
    log = tmp_path / "helm-calls.log"
    wrapper = tmp_path / "bin" / "helm"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper), log


def _tree(root: Path, inline: str = "") -> Path:
    (root / "gitops" / "apps").mkdir(parents=True)
    (root / "gitops" / "values").mkdir()
    shutil.copy(REPO / "gitops" / "charts.lock.yaml", root / "gitops" / "charts.lock.yaml")
    (root / "gitops" / "apps" / "dex.yaml").write_text(APP.format(inline=inline))
    (root / "gitops" / "values" / "dex.yaml").write_text(VALUES)
    return root


def _lint(repo: Path, tmp_path: Path, mirror: Path, helm: str, *, render: bool = True):
    options = HelmOptions(
        chart_cache=tmp_path / "charts", mirror=mirror, render_cache=tmp_path / "renders", helm=helm
    )
    return run_lint(
        [repo / "gitops"],
        cwd=repo,
        cache_dir=tmp_path / "crd-cache",
        render_charts=render,
        helm_options=options,
    )


def _templates(log: Path) -> int:
    return log.read_text().split().count("template") if log.exists() else 0


def test_render_charts_lints_the_rendered_objects_at_the_application(
    tmp_path: Path, mirror: Path, helm_log: tuple[str, Path]
) -> None:
    helm, log = helm_log
    repo = _tree(tmp_path / "repo")

    plain = _lint(repo, tmp_path, mirror, helm, render=False)
    assert plain.coverage.charts_rendered == []
    assert any("dex@0.24.0 (Helm charts are not rendered)" in n for n in plain.coverage.not_rendered)
    assert _templates(log) == 0

    report = _lint(repo, tmp_path, mirror, helm)
    cov = report.coverage
    assert cov.charts_rendered == ["Application/argocd/dex: Helm chart https://charts.dexidp.io/dex@0.24.0"]
    assert cov.not_rendered == []
    assert cov.objects > plain.coverage.objects + 3  # the Deployment, Service, ServiceAccount, ...
    assert cov.schema_core > plain.coverage.schema_core + 3
    assert _templates(log) == 1

    image = [f for f in report.findings if f.rule_id == "policy-image-not-digest"]
    assert len(image) == 1, [f.text() for f in report.findings]
    f = image[0]
    assert f.path == "gitops/apps/dex.yaml"
    assert f.line == 10  # the chart source's `chart:` line
    assert "ghcr.io/dexidp/dex:v2.44.0-deliberate" in f.message
    assert "rendered from chart dex 0.24.0 by Application dex" in f.message
    assert "set in gitops/values/dex.yaml:3" in f.message
    assert f.object is not None and f.object.startswith("Deployment/")

    # Warm: the same chart, values and versions come from the render cache; helm template is not run.
    warm = _lint(repo, tmp_path, mirror, helm)
    assert _templates(log) == 1
    assert [x.text() for x in warm.findings] == [x.text() for x in report.findings]
    assert warm.coverage == cov

    # Changed values: a new key, rendered again.
    (repo / "gitops" / "values" / "dex.yaml").write_text(VALUES.replace("deliberate", "other"))
    again = _lint(repo, tmp_path, mirror, helm)
    assert _templates(log) == 2
    assert any("v2.44.0-other" in x.message for x in again.findings)


def test_inline_values_come_after_value_files(
    tmp_path: Path, mirror: Path, helm_log: tuple[str, Path]
) -> None:
    helm, _ = helm_log
    inline = "        valuesObject:\n          image:\n            tag: v2.44.0-inline\n"
    repo = _tree(tmp_path / "repo", inline)
    report = _lint(repo, tmp_path, mirror, helm)
    images = [f.message for f in report.findings if f.rule_id == "policy-image-not-digest"]
    assert len(images) == 1 and "dex:v2.44.0-inline" in images[0], images


def test_a_chart_that_does_not_render_is_helm_render_error(
    tmp_path: Path, mirror: Path, helm_log: tuple[str, Path]
) -> None:
    helm, _ = helm_log
    repo = _tree(tmp_path / "repo", "        values: |\n          image: [unclosed\n")
    report = _lint(repo, tmp_path, mirror, helm)
    errors = [f for f in report.findings if f.rule_id == "helm-render-error"]
    assert [(f.path, f.line) for f in errors] == [("gitops/apps/dex.yaml", 10)], [
        f.text() for f in report.findings
    ]
    assert "dex 0.24.0" in errors[0].message
    assert report.coverage.charts_rendered == []
    assert any("helm template failed" in n for n in report.coverage.not_rendered)


def test_a_chart_not_in_the_lock_is_a_coverage_note(
    tmp_path: Path, mirror: Path, helm_log: tuple[str, Path]
) -> None:
    helm, log = helm_log
    repo = _tree(tmp_path / "repo")
    app = repo / "gitops" / "apps" / "dex.yaml"
    app.write_text(app.read_text().replace("0.24.0", "0.0.1"))
    report = _lint(repo, tmp_path, mirror, helm)
    assert not [f for f in report.findings if f.rule_id == "helm-render-error"]
    assert report.coverage.not_rendered == [
        "Application/argocd/dex: Helm chart https://charts.dexidp.io/dex@0.0.1 "
        "(chart dex 0.0.1 is not in the chart lock)"
    ]
    assert _templates(log) == 0


def test_cli_render_charts_flag(tmp_path: Path, mirror: Path, helm_log: tuple[str, Path]) -> None:
    """`llm-platform lint --render-charts --charts-mirror DIR`: the JSON coverage lists the chart rendered;
    without the flag it is listed as not rendered and no helm template runs."""
    helm, log = helm_log
    repo = _tree(tmp_path / "repo")
    cli = str(Path(sys.executable).parent / "llm-platform")
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "LLM_PLATFORM_CACHE_DIR": str(tmp_path / "cache"),
        "PATH": f"{Path(helm).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop(CHARTS_MIRROR_ENV, None)

    def run(*args: str) -> dict[str, Any]:
        proc = subprocess.run(
            [cli, "lint", "gitops", "--format", "json", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert proc.returncode in (0, 1), proc.stderr
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    plain = run()
    assert plain["coverage"]["charts_rendered"] == [] and len(plain["coverage"]["not_rendered"]) == 1
    assert _templates(log) == 0
    doc = run("--render-charts", "--charts-mirror", str(mirror))
    assert len(doc["coverage"]["charts_rendered"]) == 1 and doc["coverage"]["not_rendered"] == []
    assert "policy-image-not-digest" in {f["rule_id"] for f in doc["findings"]}
    assert _templates(log) == 1

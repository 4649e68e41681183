"""The `llm-platform lint` front door: exit codes, the text format, JSON and SARIF validated against
their schemas (the official SARIF 2.1.0 schema, vendored), and both ways of silencing a rule."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from llm_platform.lint import RULES, LintConfig, PathIgnore, run_lint
from llm_platform.lint.output import schema_text
from tests.support.lint_fixtures import build_tree
from tests.support.tools import require_tool

_CLI = str(Path(sys.executable).with_name("llm-platform"))
_LINE = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning) (?P<rule>[a-z0-9-]+) .+$"
)


@pytest.fixture(scope="module", autouse=True)
def _kubectl() -> None:
    require_tool("kubectl")


def _cli(repo: Path, crds_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(repo.parent / "xdg-cache"),
    }  # the CRD schema cache stays in tmp
    return subprocess.run(
        [_CLI, "lint", *args, "--crds", str(crds_dir)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_text_output_sorted_and_exit_1(tmp_path: Path, crds_dir: Path) -> None:
    repo = build_tree(tmp_path / "repo", "argocd-app-path-missing")
    proc = _cli(repo, crds_dir)  # default PATH: gitops/
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    parsed = [_LINE.match(ln) for ln in lines]
    assert all(parsed), lines
    keys = [(m["path"], int(m["line"]), int(m["col"])) for m in parsed if m]
    assert keys == sorted(keys)
    assert {m["rule"] for m in parsed if m} == {"argocd-app-path-missing", "argocd-app-orphan"}
    assert "3 finding(s)" in proc.stderr


def test_clean_tree_exit_0_and_missing_path_exit_2(tmp_path: Path, crds_dir: Path) -> None:
    repo = build_tree(tmp_path / "repo")
    proc = _cli(repo, crds_dir, "gitops")
    assert (proc.returncode, proc.stdout) == (0, "")
    missing = _cli(repo, crds_dir, "no-such-dir")
    assert missing.returncode == 2
    assert "llm-platform: error: lint: path" in missing.stderr and "no-such-dir" in missing.stderr
    bad_version = _cli(repo, crds_dir, "gitops", "--kubernetes-version", "banana")
    assert bad_version.returncode == 2 and "--kubernetes-version" in bad_version.stderr


def test_bad_config_exits_2_naming_the_field(tmp_path: Path, crds_dir: Path) -> None:
    repo = build_tree(tmp_path / "repo")
    (repo / "lint.yaml").write_text("ignore:\n  - path: gitops/**\n    rulez: [x]\n")
    proc = _cli(repo, crds_dir, "gitops", "--config", "lint.yaml")
    assert proc.returncode == 2
    assert "ignore.0.rulez" in proc.stderr


def test_json_output_validates_against_published_schema(tmp_path: Path, crds_dir: Path) -> None:
    repo = build_tree(tmp_path / "repo", "yaml-truthy")
    (repo / "gitops/platform/cluster/secret-store.yaml").write_text(
        "kind: ClusterSecretStore\nmetadata: {}\n"
    )
    proc = _cli(repo, crds_dir, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    schema = json.loads(schema_text("lint-report.schema.json"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)
    rules = {f["rule_id"] for f in doc["findings"]}
    assert {"yaml-truthy", "k8s-object-identity"} <= rules
    assert doc["summary"]["warnings"] == 1 and doc["exit_code"] == 1
    # The schema really constrains: a finding without a line is rejected.
    del doc["findings"][0]["line"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(doc)


def test_sarif_output_validates_against_the_official_schema(tmp_path: Path, crds_dir: Path) -> None:
    repo = build_tree(tmp_path / "repo", "argocd-crd-order")
    proc = _cli(repo, crds_dir, "--format", "sarif")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    schema = json.loads(schema_text("sarif-2.1.0.json"))
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    jsonschema.Draft4Validator(schema).validate(doc)
    results = doc["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"argocd-crd-order"}
    assert (
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == "gitops/apps/cluster-config.yaml"
    )
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert rules[results[0]["ruleIndex"]]["id"] == "argocd-crd-order"
    doc["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(doc)


def test_silencing_by_annotation_and_by_config_path(tmp_path: Path, crds_dir: Path) -> None:
    repo = build_tree(tmp_path / "repo", "policy-gpu-toleration")
    crds = [crds_dir]
    cache = tmp_path / "cache"
    loud = run_lint([repo / "gitops"], crd_dirs=crds, cwd=repo, cache_dir=cache)
    assert [f.rule_id for f in loud.findings] == ["policy-gpu-toleration"]

    by_path = LintConfig(ignore=[PathIgnore(path="gitops/serving/**", rules=["policy-gpu-*"])])
    quiet = run_lint([repo / "gitops"], crd_dirs=crds, cwd=repo, cache_dir=cache, config=by_path)
    assert (quiet.findings, quiet.exit_code, quiet.coverage.silenced) == ([], 0, 1)
    other_rule = LintConfig(ignore=[PathIgnore(path="gitops/serving/**", rules=["policy-probes"])])
    assert (
        len(run_lint([repo / "gitops"], crd_dirs=crds, cwd=repo, cache_dir=cache, config=other_rule).findings)
        == 1
    )

    isvc = repo / "gitops/serving/base/isvc.yaml"
    isvc.write_text(
        isvc.read_text().replace(
            "  annotations:\n",
            "  annotations:\n    lint.llm-platform.io/ignore: policy-probes,policy-gpu-toleration\n",
        )
    )
    annotated = run_lint([repo / "gitops"], crd_dirs=crds, cwd=repo, cache_dir=cache)
    assert (annotated.findings, annotated.exit_code, annotated.coverage.silenced) == ([], 0, 1)


def test_custom_resource_without_schema_allowed_by_config(tmp_path: Path, crds_dir: Path) -> None:
    repo = build_tree(tmp_path / "repo", "schema-missing")
    cfg = LintConfig(allow_missing_schema=["example.com/*"])
    report = run_lint(
        [repo / "gitops"], crd_dirs=[crds_dir], cwd=repo, config=cfg, cache_dir=tmp_path / "cache"
    )
    assert report.findings == []
    # Without --crds every custom resource is an error, never a silent skip.
    bare = run_lint([repo / "gitops"], cwd=repo, config=cfg, cache_dir=tmp_path / "cache")
    assert {f.rule_id for f in bare.findings} == {"schema-missing"}
    assert len(bare.findings) >= 15


def test_lint_rules_lists_every_rule() -> None:
    proc = subprocess.run([_CLI, "lint-rules"], capture_output=True, text=True, check=True)
    assert {r[0] for r in (ln.split("\t") for ln in proc.stdout.splitlines())} == set(RULES)
    rows = [ln.split("\t") for ln in proc.stdout.splitlines()]
    assert len(rows) >= 40 and all(len(r) == 3 and r[1] in ("error", "warning") and r[2] for r in rows)


def test_missing_renderer_means_could_not_run(tmp_path: Path, crds_dir: Path) -> None:
    """No kubectl (and no kustomize) on PATH: exit 2 with one clear line, never a partial report."""
    repo = build_tree(tmp_path / "repo")
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run(
        [_CLI, "lint", "gitops", "--crds", str(crds_dir)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "llm-platform: error: neither kustomize nor kubectl is on PATH" in proc.stderr

"""`lint --render-charts`: each Helm chart source of an Application is rendered with the pinned helm
(chart packages verified from the chart lock, through $LLM_PLATFORM_CHARTS_MIRROR), its objects are
linted like the tree's own, findings point at the Application, and renders are cached. A render that is
not cached runs twice: the two must agree (helm-render-nondeterministic); our values keys must be values
of the chart (helm-values-unknown). Synthetic charts come through a chart lock and mirror of their own."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from llm_platform.lint import helm_values, run_lint
from llm_platform.lint.charts_lock import CHARTS_MIRROR_ENV
from llm_platform.lint.config import LintConfig
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
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper), log


def _tree(root: Path, inline: str = "") -> Path:
    (root / "gitops" / "apps").mkdir(parents=True)
    (root / "gitops" / "values").mkdir()
    shutil.copy(REPO / "gitops" / "charts.lock.yaml", root / "gitops" / "charts.lock.yaml")
    (root / "gitops" / "apps" / "dex.yaml").write_text(APP.format(inline=inline))
    (root / "gitops" / "values" / "dex.yaml").write_text(VALUES)
    return root


def _lint(repo: Path, tmp_path: Path, mirror: Path, helm: str, *, render: bool = True, config=None):
    options = HelmOptions(
        chart_cache=tmp_path / "charts", mirror=mirror, render_cache=tmp_path / "renders", helm=helm
    )
    return run_lint(
        [repo / "gitops"],
        cwd=repo,
        config=config,
        cache_dir=tmp_path / "crd-cache",
        render_charts=render,
        helm_options=options,
    )


def _templates(log: Path) -> int:
    return (
        [ln.split(" ", 1)[0] for ln in log.read_text().splitlines()].count("template") if log.exists() else 0
    )


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
    assert _templates(log) == 2  # rendered twice, to compare

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
    assert _templates(log) == 2
    assert [x.text() for x in warm.findings] == [x.text() for x in report.findings]
    assert warm.coverage == cov

    # Changed values: a new key, rendered again.
    (repo / "gitops" / "values" / "dex.yaml").write_text(VALUES.replace("deliberate", "other"))
    again = _lint(repo, tmp_path, mirror, helm)
    assert _templates(log) == 4
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
    assert _templates(log) == 2


# helm-values-unknown ------------------------------------------------------------------------------------


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_values_keys_the_chart_does_not_define_are_helm_values_unknown(
    tmp_path: Path, mirror: Path, helm_log: tuple[str, Path]
) -> None:
    """dex has no values.schema.json: its values.yaml defaults say what is a value. `image.tga` is not
    (a typo of `tag`); `config` defaults to `{}` (free-form) and `global` is always free-form. Inline
    values are checked too, at the key's line in the Application."""
    helm, _ = helm_log
    inline = "        valuesObject:\n          service:\n            nonsense: 1\n"
    repo = _tree(tmp_path / "repo", inline)
    values = VALUES + "  tga: v2\nconfig:\n  anything: {goes: here}\nglobal:\n  whatever: 1\n"
    (repo / "gitops" / "values" / "dex.yaml").write_text(values)
    report = _lint(repo, tmp_path, mirror, helm)
    got = [(f.path, f.line, f.message) for f in report.findings if f.rule_id == "helm-values-unknown"]
    app = (repo / "gitops" / "apps" / "dex.yaml").read_text()
    assert got == [
        (
            "gitops/apps/dex.yaml",
            _line(app, "nonsense: 1"),
            "values key 'service.nonsense' is not a value of chart dex 0.24.0 (values.yaml): the chart ignores it",
        ),
        (
            "gitops/values/dex.yaml",
            _line(values, "tga:"),
            "values key 'image.tga' is not a value of chart dex 0.24.0 (values.yaml): the chart ignores it; "
            "did you mean 'tag'?",
        ),
    ], [f.text() for f in report.findings]


def test_unknown_keys_of_an_inline_values_string_point_into_the_block(
    tmp_path: Path, mirror: Path, helm_log: tuple[str, Path]
) -> None:
    helm, _ = helm_log
    repo = _tree(tmp_path / "repo", "        values: |\n          image:\n            tga: v3\n")
    report = _lint(repo, tmp_path, mirror, helm)
    app = (repo / "gitops" / "apps" / "dex.yaml").read_text()
    got = [(f.path, f.line) for f in report.findings if f.rule_id == "helm-values-unknown"]
    assert got == [("gitops/apps/dex.yaml", _line(app, "tga: v3"))], [f.text() for f in report.findings]


def _tgz(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


DEMO_VALUES = """\
replicaCount: 1
image:
  repository: example/demo
  tag: ""
podAnnotations: {}
extra:
items:
  - a
config:
  level: info
  # optional, documented as a comment: a value too
  # commented: value
random: false
clock: false
"""

DEMO_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-demo
data:
  replicas: {{ .Values.replicaCount | quote }}
  {{- if .Values.random }}
  token: {{ randAlphaNum 16 | quote }}
  {{- end }}
  {{- if .Values.clock }}
  at: {{ now | date "15:04:05" | quote }}
  {{- end }}
"""


def _demo_chart() -> bytes:
    """A chart `demo` 1.0.0: its values.yaml, a subchart `sub` under the alias `cache` (condition
    `cache.enabled`), a subchart `other` with a values.schema.json (tag `backend`), and a subchart `nested`
    packaged as charts/nested-0.1.0.tgz."""
    nested = _tgz(
        {
            "nested/Chart.yaml": "apiVersion: v2\nname: nested\nversion: 0.1.0\n",
            "nested/values.yaml": "log:\n  level: info\n",
        }
    )
    schema = {
        "type": "object",
        "properties": {
            "size": {"type": "integer"},
            "opts": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {}}}},
            "labels": {"type": "object"},
        },
    }
    return _tgz(
        {
            "demo/Chart.yaml": (
                "apiVersion: v2\nname: demo\nversion: 1.0.0\ndependencies:\n"
                "  - name: sub\n    version: 0.1.0\n    alias: cache\n    condition: cache.enabled\n"
                "  - name: other\n    version: 0.1.0\n    tags: [backend]\n"
                "  - name: nested\n    version: 0.1.0\n"
            ),
            "demo/values.yaml": DEMO_VALUES,
            "demo/templates/configmap.yaml": DEMO_TEMPLATE,
            "demo/charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
            "demo/charts/sub/values.yaml": "port: 6379\nauth:\n  password: ''\n",
            "demo/charts/other/Chart.yaml": "apiVersion: v2\nname: other\nversion: 0.1.0\n",
            "demo/charts/other/values.yaml": "size: 1\n",
            "demo/charts/other/values.schema.json": json.dumps(schema),
            "demo/charts/nested-0.1.0.tgz": nested,
        }
    )


DEMO_APP = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: demo
  namespace: argocd
spec:
  project: default
  sources:
    - repoURL: https://charts.example.com
      chart: demo
      targetRevision: 1.0.0
      helm:
        valueFiles:
          - $values/gitops/values/demo.yaml
{inline}    - repoURL: https://github.com/example/llm-platform.git
      targetRevision: main
      ref: values
  destination:
    server: https://kubernetes.default.svc
    namespace: demo
{extra}"""


def _demo_tree(root: Path, values: str = "", inline: str = "", extra: str = "") -> tuple[Path, Path]:
    """A repository with the demo Application, and a chart mirror (package + INDEX.json) that its chart
    lock's entry is verified against. Returns (repo, mirror)."""
    package = _demo_chart()
    commit = "0123456789abcdef0123456789abcdef01234567"
    mirror = root / "mirror"
    mirror.mkdir(parents=True)
    (mirror / "demo-1.0.0.tgz").write_bytes(package)
    record = {
        "file": "demo-1.0.0.tgz",
        "chart": "demo",
        "version": "1.0.0",
        "repo": "example/demo",
        "tag": "v1.0.0",
        "commit": commit,
        "sha256": hashlib.sha256(package).hexdigest(),
    }
    (mirror / "INDEX.json").write_text(json.dumps([record]))
    repo = root / "repo"
    (repo / "gitops" / "apps").mkdir(parents=True)
    (repo / "gitops" / "values").mkdir()
    (repo / "gitops" / "charts.lock.yaml").write_text(
        "charts:\n  - chart: demo\n    version: 1.0.0\n    repository: https://charts.example.com\n"
        f"    source: {{repo: example/demo, tag: v1.0.0, commit: '{commit}'}}\n"
    )
    (repo / "gitops" / "apps" / "demo.yaml").write_text(DEMO_APP.format(inline=inline, extra=extra))
    (repo / "gitops" / "values" / "demo.yaml").write_text(values)
    return repo, mirror


DEMO_OURS = """\
replicaCount: 2
replicas: 3
image:
  tag: v1
  tga: v1
podAnnotations: {a: b}
extra: {any: 1}
items:
  - {anything: 1}
config:
  commented: yes-it-is
  levl: debug
global: {anything: 1}
cache:
  enabled: true
  port: 1
  prot: 2
sub:
  port: 1
tags: {backend: true}
other:
  size: 1
  sizee: 1
  labels: {free: form}
  opts:
    one:
      x: 1
      y: 2
nested:
  log:
    level: debug
    levle: x
"""


def test_helm_values_unknown_subcharts_aliases_schemas_and_free_form_places(
    tmp_path: Path, helm_log: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    helm, log = helm_log
    repo, mirror = _demo_tree(tmp_path, DEMO_OURS)
    report = _lint(repo, tmp_path, mirror, helm)
    assert report.coverage.charts_rendered, report.coverage.not_rendered
    got = {
        f.message.split("'")[1]: (f.path, f.line, f.message)
        for f in report.findings
        if f.rule_id == "helm-values-unknown"
    }
    assert sorted(got) == [
        "cache.prot",
        "config.levl",
        "image.tga",
        "nested.log.levle",
        "other.opts.one.y",
        "other.sizee",
        "replicas",
        "sub",
    ], [f.text() for f in report.findings]
    for key, (path, line, _) in got.items():
        assert path == "gitops/values/demo.yaml"
        leaf = key.rsplit(".", 1)[-1]
        assert DEMO_OURS.splitlines()[line - 1].lstrip().startswith(f"{leaf}:"), (key, line)
    assert got["replicas"][2] == (
        "values key 'replicas' is not a value of chart demo 1.0.0 (values.yaml): the chart ignores it; "
        "did you mean 'replicaCount'?"
    )
    assert "(charts/sub/values.yaml): the chart ignores it; did you mean 'port'?" in got["cache.prot"][2]
    assert "(charts/other/values.schema.json and charts/other/values.yaml)" in got["other.sizee"][2]
    assert "did you mean 'size'?" in got["other.sizee"][2]
    assert "(charts/other/values.schema.json)" in got["other.opts.one.y"][2]
    assert "(charts/nested-0.1.0.tgz/values.yaml)" in got["nested.log.levle"][2]
    assert "did you mean 'level'?" in got["config.levl"][2]

    # Warm: neither helm nor the package is read again (the chart's values come from the cache, by sha256).
    helm_values._MEMO.clear()
    calls = _templates(log)

    def no_package(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a chart package was read on a warm lint: {args}")

    monkeypatch.setattr(helm_values.tarfile, "open", no_package)
    warm = _lint(repo, tmp_path, mirror, helm)
    monkeypatch.undo()
    assert _templates(log) == calls
    assert [f.text() for f in warm.findings] == [f.text() for f in report.findings]


def test_an_application_silences_helm_values_unknown(tmp_path: Path, helm_log: tuple[str, Path]) -> None:
    helm, _ = helm_log
    repo, mirror = _demo_tree(tmp_path, "replicas: 3\n")
    app = repo / "gitops" / "apps" / "demo.yaml"
    app.write_text(
        app.read_text().replace(
            "  namespace: argocd\n",
            "  namespace: argocd\n  annotations:\n    lint.llm-platform.io/ignore: helm-values-unknown\n",
            1,
        )
    )
    report = _lint(repo, tmp_path, mirror, helm)
    assert not [f for f in report.findings if f.rule_id == "helm-values-unknown"]
    assert report.coverage.silenced >= 1


# helm-render-nondeterministic -----------------------------------------------------------------------------


def test_a_chart_that_renders_differently_each_time_is_helm_render_nondeterministic(
    tmp_path: Path, helm_log: tuple[str, Path]
) -> None:
    helm, log = helm_log
    repo, mirror = _demo_tree(tmp_path, "random: true\n")
    report = _lint(repo, tmp_path, mirror, helm)
    found = [f for f in report.findings if f.rule_id == "helm-render-nondeterministic"]
    assert [(f.path, f.line) for f in found] == [("gitops/apps/demo.yaml", 10)], [
        f.text() for f in report.findings
    ]
    assert "two renders of chart demo 1.0.0 (release demo) with the same inputs differ: " in found[0].message
    assert "ConfigMap/demo-demo at data.token" in found[0].message
    assert "existing Secret" in found[0].message and "ignoreDifferences" in found[0].message
    assert _templates(log) == 2

    # Warm: the verdict is cached with the render; helm is not run again, the finding stays.
    warm = _lint(repo, tmp_path, mirror, helm)
    assert _templates(log) == 2
    assert [f.text() for f in warm.findings] == [f.text() for f in report.findings]


def test_a_now_timestamp_is_nondeterministic_too(tmp_path: Path, helm_log: tuple[str, Path]) -> None:
    """`now` formatted to the second: the second render starts over a second after the first."""
    helm, _ = helm_log
    repo, mirror = _demo_tree(tmp_path, "clock: true\n")
    report = _lint(repo, tmp_path, mirror, helm)
    found = [f.message for f in report.findings if f.rule_id == "helm-render-nondeterministic"]
    assert len(found) == 1 and "ConfigMap/demo-demo at data.at" in found[0], found


def test_a_deterministic_chart_is_not_nondeterministic(tmp_path: Path, helm_log: tuple[str, Path]) -> None:
    helm, log = helm_log
    repo, mirror = _demo_tree(tmp_path, "replicaCount: 3\n")
    report = _lint(repo, tmp_path, mirror, helm)
    assert report.coverage.charts_rendered
    assert not [f for f in report.findings if f.rule_id.startswith("helm-")], [
        f.text() for f in report.findings
    ]
    assert _templates(log) == 2


def test_ignore_differences_covering_the_paths_is_not_nondeterministic(
    tmp_path: Path, helm_log: tuple[str, Path]
) -> None:
    helm, _ = helm_log
    extra = (
        "  ignoreDifferences:\n    - kind: ConfigMap\n      name: demo-demo\n      jsonPointers:\n"
        "        - {pointer}\n"
        "  syncPolicy:\n    syncOptions:\n      - RespectIgnoreDifferences=true\n"
    )
    repo, mirror = _demo_tree(tmp_path, "random: true\n", extra=extra.format(pointer="/data/token"))
    report = _lint(repo, tmp_path, mirror, helm)
    assert not [f for f in report.findings if f.rule_id == "helm-render-nondeterministic"]

    # Without RespectIgnoreDifferences=true every sync still applies the new value.
    app = repo / "gitops" / "apps" / "demo.yaml"
    text = app.read_text()
    app.write_text(text.replace("      - RespectIgnoreDifferences=true\n", "      - CreateNamespace=true\n"))
    report = _lint(repo, tmp_path, mirror, helm)
    assert [f.rule_id for f in report.findings if f.rule_id == "helm-render-nondeterministic"] == [
        "helm-render-nondeterministic"
    ]
    app.write_text(text)

    # Another path ignored: the token still differs.
    app.write_text(app.read_text().replace("/data/token", "/data/replicas"))
    report = _lint(repo, tmp_path, mirror, helm)
    assert [f.rule_id for f in report.findings if f.rule_id == "helm-render-nondeterministic"] == [
        "helm-render-nondeterministic"
    ]


def test_renders_see_the_ga_built_in_apis_of_the_kubernetes_version_and_the_crds_of_the_tree(
    tmp_path: Path, helm_log: tuple[str, Path]
) -> None:
    """`.Capabilities.APIVersions` as the cluster will serve them: every GA built-in kind of the target
    Kubernetes version (not its alpha/beta APIs, off by default) and the kinds of the tree's CRDs."""
    helm, log = helm_log
    repo, mirror = _demo_tree(tmp_path, "replicaCount: 1\n")
    report = _lint(repo, tmp_path, mirror, helm)
    assert report.coverage.charts_rendered
    [argv] = [ln.split() for ln in log.read_text().splitlines() if ln.startswith("template")][:1]
    apis = {argv[i + 1] for i, a in enumerate(argv) if a == "--api-versions"}
    assert {"apps/v1", "apps/v1/Deployment", "policy/v1/PodDisruptionBudget", "v1/ConfigMap"} <= apis
    assert "resource.k8s.io/v1/ResourceClaim" in apis  # GA in 1.34, served by 1.35
    assert not [a for a in apis if any(re.fullmatch(r"v[0-9]+(alpha|beta)[0-9]*", p) for p in a.split("/"))]


def _values_repo(root: Path, files: dict[str, str]) -> tuple[str, str]:
    """A real git repository (bare, served by file://) holding `files` on branch main: (url, commit)."""
    work = root / "values-work"
    work.mkdir(parents=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=env)
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "values"], check=True, env=env)
    bare = root / "values.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, env=env)
    commit = subprocess.run(
        ["git", "-C", str(bare), "rev-parse", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"file://{bare}", commit


# The demo tree has no `path:` source to tell which repoURL is this checkout: say it.
OURS = LintConfig(repo_urls=["https://github.com/example/llm-platform.git"])


def _with_shared_values(
    repo: Path, url: str, revision: str, value_file: str = "$shared/values/team.yaml"
) -> None:
    app = repo / "gitops" / "apps" / "demo.yaml"
    text = app.read_text().replace(
        "          - $values/gitops/values/demo.yaml\n",
        f"          - $values/gitops/values/demo.yaml\n          - {value_file}\n",
    )
    text = text.replace(
        "  destination:\n",
        f"    - repoURL: {url}\n      targetRevision: {revision}\n      ref: shared\n  destination:\n",
    )
    app.write_text(text)


def test_values_from_another_repository_are_fetched_at_its_revision_and_linted(
    tmp_path: Path, helm_log: tuple[str, Path]
) -> None:
    """A `$ref` value file of another repository is read as Argo CD reads it: that repository at the ref
    source's targetRevision. Its keys are checked like ours, findings naming repository, commit and line;
    a commit revision already fetched needs no network again; an unreachable one is not rendered."""
    helm, log = helm_log
    url, commit = _values_repo(tmp_path / "remote", {"values/team.yaml": "replicaCount: 5\nreplicaz: 2\n"})
    repo, mirror = _demo_tree(tmp_path, "replicaCount: 1\n")
    _with_shared_values(repo, url, "main")
    report = _lint(repo, tmp_path, mirror, helm, config=OURS)
    assert report.coverage.charts_rendered and not report.coverage.not_rendered
    found = [(f.rule_id, f.path, f.line) for f in report.findings]
    assert ("helm-values-unknown", f"{url}@{commit[:12]}:values/team.yaml", 2) in found, found
    # The fetched file went to helm after ours (Argo CD's order: later files win).
    [argv] = [ln.split() for ln in log.read_text().splitlines() if ln.startswith("template")][:1]
    files = [argv[i + 1] for i, a in enumerate(argv) if a == "-f"]
    assert files[0].endswith("gitops/values/demo.yaml") and files[1].endswith("values/team.yaml")

    # Pinned to the commit: once fetched, the repository is not needed any more.
    _with_shared_values(repo, url, "main")  # (no-op: already there)
    app = repo / "gitops" / "apps" / "demo.yaml"
    app.write_text(
        app.read_text().replace(
            "targetRevision: main\n      ref: shared", f"targetRevision: {commit}\n      ref: shared"
        )
    )
    shutil.rmtree(url.removeprefix("file://"))
    report = _lint(repo, tmp_path, mirror, helm, config=OURS)
    assert report.coverage.charts_rendered and not report.coverage.not_rendered

    # A branch of a repository that is gone: not rendered, with the reason.
    app.write_text(
        app.read_text().replace(
            f"targetRevision: {commit}\n      ref: shared", "targetRevision: main\n      ref: shared"
        )
    )
    report = _lint(repo, tmp_path, mirror, helm, config=OURS)
    [reason] = report.coverage.not_rendered
    assert "value file '$shared/values/team.yaml' of file://" in reason and "git could not read" in reason


def test_a_missing_value_file_of_another_repository_is_accepted_only_with_ignore_missing(
    tmp_path: Path, helm_log: tuple[str, Path]
) -> None:
    helm, _ = helm_log
    url, _ = _values_repo(tmp_path / "remote", {"values/other.yaml": "a: 1\n"})
    repo, mirror = _demo_tree(tmp_path, "replicaCount: 1\n")
    _with_shared_values(repo, url, "main")
    report = _lint(repo, tmp_path, mirror, helm, config=OURS)
    [reason] = report.coverage.not_rendered
    assert "values/team.yaml does not exist at" in reason
    app = repo / "gitops" / "apps" / "demo.yaml"
    app.write_text(
        app.read_text().replace(
            "        valueFiles:\n", "        ignoreMissingValueFiles: true\n        valueFiles:\n"
        )
    )
    report = _lint(repo, tmp_path, mirror, helm, config=OURS)
    assert report.coverage.charts_rendered and not report.coverage.not_rendered

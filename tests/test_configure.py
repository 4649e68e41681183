"""`llm-platform configure`: on a copy of the real gitops/ and modelcars/ inside a git repository with an
`origin` remote, every placeholder is set, only their characters change (comments, quoting, order, digests,
chart revisions stay), a second run changes nothing, --dry-run and --check write nothing, --check --env
sees what one environment installs, and anything that cannot be edited exactly fails with nothing written.
Then `lint` agrees: config-placeholder on the template without `template: true`, none once configured."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from llm_platform.configure import placeholders
from llm_platform.configure.identity import Identity
from llm_platform.configure.service import configure, make_plan
from llm_platform.errors import InputError
from llm_platform.lint import LintConfig, load_config, run_lint
from tests.support.bump_cli import CliRun, run_cli
from tests.support.bump_fixture import git, git_env
from tests.support.lint_fixtures import build_tree
from tests.support.tools import require_tool

REPO_ROOT = Path(__file__).resolve().parent.parent
FORK_URL = "https://github.com/acme/llm-platform.git"
PROJECT = "acme-llm"
REGION = "europe-west4"
REGISTRY = f"{REGION}-docker.pkg.dev/{PROJECT}/modelcars"
TEMPLATE_LINE = (
    "template: true  # the upstream template: placeholders expected (configure removes this line)\n"
)
_CHECK_LINE = re.compile(
    r"^\S+:\d+: placeholder \S+ \((configure --\S+.*sets it|configure cannot rewrite.*)\)$"
)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}")


class Fork:
    def __init__(self, root: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys) -> None:
        self.root = root
        self.env = env
        self._monkeypatch = monkeypatch
        self._capsys = capsys

    def run(self, *args: str) -> CliRun:
        return run_cli(
            ["configure", "--root", str(self.root), *args], self.env, self._monkeypatch, self._capsys
        )

    def files(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for part in ("gitops", "modelcars")
            for p in sorted((self.root / part).rglob("*"))
            if p.is_file()
        }


def _copy_tree(dest: Path) -> None:
    for part in ("gitops", "modelcars"):
        shutil.copytree(REPO_ROOT / part, dest / part)


def _with_template_line(root: Path) -> None:
    """gitops/lint.yaml as the template carries it: `template: true` as its first key."""
    lint = root / "gitops" / "lint.yaml"
    text = lint.read_text()
    if re.search(r"^template:", text, re.M):
        return
    header = re.match(r"(?:#[^\n]*\n)*", text)
    end = header.end() if header else 0
    lint.write_text(text[:end] + TEMPLATE_LINE + text[end:])


def _without_template_line(root: Path) -> None:
    lint = root / "gitops" / "lint.yaml"
    lint.write_text(re.sub(r"^template:[^\n]*\n", "", lint.read_text(), flags=re.M))


@pytest.fixture
def fork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Fork:
    home = tmp_path / "home"
    home.mkdir()
    env = git_env(home)
    root = tmp_path / "fork"
    root.mkdir()
    _copy_tree(root)
    _with_template_line(root)
    git(root, "init", "-q", "-b", "main", env=env)
    git(root, "remote", "add", "origin", FORK_URL, env=env)
    return Fork(root, env, monkeypatch, capsys)


def _marker_mentions(files: dict[str, bytes]) -> list[str]:
    """What `grep -rn llm-platform-example` finds outside documentation (Markdown)."""
    return [
        f"{path}:{number}"
        for path, data in files.items()
        if not path.endswith(".md")
        for number, line in enumerate(data.decode().splitlines(), start=1)
        if placeholders.MARKER in line
    ]


def _substituted(line: str, revision: str) -> set[str]:
    """The only lines a changed line may become: the placeholders replaced in it, nothing else."""
    replaced = (
        line.replace(placeholders.REPO_URL, FORK_URL)
        .replace(placeholders.REGISTRY + "/", REGISTRY + "/")
        .replace(f"projectID: {placeholders.PROJECT_ID}", f"projectID: {PROJECT}")
    )
    return {replaced, replaced.replace("targetRevision: main", f"targetRevision: {revision}")}


def _sources(data: object) -> list[dict]:
    spec = data.get("spec") if isinstance(data, dict) else None
    if not isinstance(spec, dict):
        return []
    found = [spec["source"]] if isinstance(spec.get("source"), dict) else []
    return found + [s for s in spec.get("sources") or [] if isinstance(s, dict)]


def test_configure_sets_every_placeholder_and_changes_nothing_else(fork: Fork) -> None:
    before = fork.files()
    assert len(_marker_mentions(before)) >= 30  # the template, as shipped
    proc = fork.run("--project-id", PROJECT, "--region", REGION, "--revision", "release-1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["unchanged"] is False and result["dry_run"] is False
    assert (result["repo_url"], result["registry"]) == (FORK_URL, REGISTRY)  # --repo-url from origin
    after = fork.files()
    assert _marker_mentions(after) == []
    assert set(after) == set(before)

    edited = {f["path"] for f in result["files"]}
    assert {p for p in before if before[p] != after[p]} == edited
    for path in edited:
        old_lines = before[path].decode().splitlines(keepends=True)
        new_lines = after[path].decode().splitlines(keepends=True)
        if path == "gitops/lint.yaml":  # the template line goes, nothing else
            assert TEMPLATE_LINE in old_lines
            old_lines.remove(TEMPLATE_LINE)
        assert len(old_lines) == len(new_lines), path
        for number, (old, new) in enumerate(zip(old_lines, new_lines, strict=True), start=1):
            if old != new:
                assert new in _substituted(old, "release-1"), f"{path}:{number}: {old!r} -> {new!r}"
                assert _DIGEST.findall(old) == _DIGEST.findall(new)  # digests kept

    # Every edit is reported with file:line and old -> new, and matches the file.
    for entry in result["files"]:
        for edit in entry["edits"]:
            path, line = edit["where"].rsplit(":", 1)
            assert path == entry["path"]
            if edit["new"] is not None:
                assert edit["new"] in after[path].decode().splitlines()[int(line) - 1]
    kinds = {e["kind"] for f in result["files"] for e in f["edits"]}
    assert kinds == {"repo-url", "revision", "project-id", "registry", "template"}

    # targetRevision changed on our sources only: chart versions and other repositories' tags stay.
    ours = 0
    for path in edited:
        if not path.startswith("gitops/") or path == "gitops/lint.yaml":
            continue
        old_docs = list(yaml.safe_load_all(before[path]))
        new_docs = list(yaml.safe_load_all(after[path]))
        for old_doc, new_doc in zip(old_docs, new_docs, strict=True):
            for old_src, new_src in zip(_sources(old_doc), _sources(new_doc), strict=True):
                if new_src.get("repoURL") == FORK_URL:
                    ours += 1
                    assert new_src.get("targetRevision") == "release-1"
                else:
                    assert new_src == old_src
    assert ours >= 20

    # The spec's repository and the serving references agree, each on the new prefix.
    for spec in (fork.root / "modelcars").glob("*.yaml"):
        repository = yaml.safe_load(spec.read_text())["image"]["repository"]
        assert repository == f"{REGISTRY}/{spec.stem}"


def test_a_second_run_changes_nothing_and_says_so(fork: Fork) -> None:
    args = ("--project-id", PROJECT, "--region", REGION)
    assert fork.run(*args).returncode == 0
    configured = fork.files()
    proc = fork.run(*args)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["unchanged"] is True and result["files"] == []
    assert "nothing to change" in proc.stderr
    assert fork.files() == configured


def test_dry_run_prints_the_plan_and_writes_nothing(fork: Fork) -> None:
    before = fork.files()
    proc = fork.run("--project-id", PROJECT, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["dry_run"] is True and result["unchanged"] is False
    assert sum(len(f["edits"]) for f in result["files"]) >= 30
    assert fork.files() == before


def test_check_names_each_placeholder_then_passes_once_configured(fork: Fork) -> None:
    before = fork.files()
    proc = fork.run("--check")
    assert proc.returncode == 1
    assert proc.stdout == ""
    *lines, last = proc.stderr.strip().splitlines()
    assert len(lines) == len(_marker_mentions(before)), proc.stderr
    assert all(_CHECK_LINE.match(line) for line in lines), lines
    assert (
        "gitops/platform/overlays/gke/secret-store.yaml:10: placeholder llm-platform-example (configure --project-id sets it)"
        in lines
    )
    assert re.match(
        r"^llm-platform: error: configure --check: \d+ placeholder\(s\) left in \d+ file\(s\)", last
    )
    assert fork.files() == before

    assert fork.run("--project-id", PROJECT).returncode == 0
    proc = fork.run("--check")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["placeholders"] == []


def test_check_env_considers_only_what_that_environment_installs(fork: Fork) -> None:
    def lines(env: str) -> set[str]:
        proc = fork.run("--check", "--env", env)
        assert proc.returncode == 1
        return {line.split(": placeholder")[0].rsplit(":", 1)[0] for line in proc.stderr.splitlines()[:-1]}

    kind, gke = lines("kind"), lines("gke")
    assert "gitops/platform/overlays/gke/secret-store.yaml" in gke - kind
    assert {"gitops/bootstrap/root-gke.yaml", "gitops/apps/gke/dcgm-exporter.yaml"} <= gke - kind
    assert "gitops/apps/features/opencost/opencost.yaml" in gke - kind  # only gke lists the component
    assert {"gitops/bootstrap/root-kind.yaml", "gitops/apps/kind/gpu-operator.yaml"} <= kind - gke
    assert {"gitops/apps/base/project.yaml", "modelcars/minilm-demo.yaml"} <= kind & gke

    # kind needs no GCP project: the repository and a registry are enough for it, not for gke.
    proc = fork.run("--registry", "registry.example.com:5000/modelcars")
    assert proc.returncode == 0, proc.stderr
    assert "--project-id not given" in proc.stderr
    assert [p["path"] for p in json.loads(proc.stdout)["left"]] == [
        "gitops/platform/overlays/gke/secret-store.yaml"
    ]
    assert fork.run("--check", "--env", "kind").returncode == 0
    proc = fork.run("--check", "--env", "gke")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith(
        "gitops/platform/overlays/gke/secret-store.yaml:10: placeholder"
    )
    assert fork.run("--check", "--env", "minikube").returncode == 2


def _one_error_line(proc: CliRun, code: int, start: str) -> str:
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"llm-platform: error: {start}"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--project-id", "Acme_LLM"), "--project-id"),
        (("--project-id", "abc"), "--project-id"),
        (("--project-id", "1acme-llm"), "--project-id"),
        (("--project-id", "llm-platform-example"), "--project-id"),
        (("--project-id", PROJECT, "--region", "Europe West"), "--region"),
        (("--project-id", PROJECT, "--registry", "https://x.example/y"), "--registry"),
        (("--project-id", PROJECT, "--revision", "-rf"), "--revision"),
        (("--repo-url", "https://bot:s3cr3t-token@github.com/acme/llm-platform.git"), "--repo-url"),
        (("--repo-url", "https://s3cr3t-token@github.com/acme/llm-platform.git"), "--repo-url"),
        (("--repo-url", "ftp://github.com/acme/llm-platform.git"), "--repo-url"),
        (("--check", "--project-id", PROJECT), "--check"),
        (("--env", "kind"), "--env"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag_and_writes_nothing(
    fork: Fork, args: tuple[str, ...], flag: str
) -> None:
    before = fork.files()
    line = _one_error_line(fork.run(*args), 2, f"{flag}")
    assert "s3cr3t" not in line
    assert fork.files() == before


def test_repo_url_from_origin_is_refused_with_credentials_and_needed_without_origin(fork: Fork) -> None:
    git(
        fork.root,
        "remote",
        "set-url",
        "origin",
        "https://bot:s3cr3t-token@github.com/acme/x.git",
        env=fork.env,
    )
    line = _one_error_line(fork.run("--project-id", PROJECT), 2, "--repo-url")
    assert "s3cr3t" not in line and "credentials" in line
    git(fork.root, "remote", "remove", "origin", env=fork.env)
    _one_error_line(fork.run("--project-id", PROJECT), 2, "--repo-url: not given")
    proc = fork.run("--repo-url", "git@github.com:acme/llm-platform.git", "--project-id", PROJECT)
    assert proc.returncode == 0, proc.stderr
    assert (
        "repoURL: git@github.com:acme/llm-platform.git"
        in (fork.root / "gitops/bootstrap/root-kind.yaml").read_text()
    )


_SHARED_REVISION = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shared
  namespace: argocd
spec:
  project: platform
  sources:
    - repoURL: https://github.com/llm-platform-example/llm-platform.git
      targetRevision: &rev main
      ref: values
    - repoURL: https://charts.example.com
      chart: thing
      targetRevision: *rev
  destination:
    server: https://kubernetes.default.svc
    namespace: thing
"""


@pytest.mark.parametrize(
    ("name", "text", "line", "why"),
    [
        ("escaped.yaml", 'kind: X\nprojectID: "llm-platform\\x2dexample"\n', 2, "not written literally"),
        (
            "folded.yaml",
            "kind: X\nrepo: >-\n  https://github.com/llm-platform-example/llm-platform.git\n",
            2,
            "not written literally",
        ),
        (
            "longer.yaml",
            "args:\n  - --model=oci://us-central1-docker.pkg.dev/llm-platform-example/modelcars/x@sha256:"
            + "0" * 64
            + "\n",
            2,
            "inside a value configure does not know",
        ),
        ("shared.yaml", _SHARED_REVISION, 10, "shared"),
    ],
)
def test_what_cannot_be_edited_exactly_fails_and_nothing_is_written(
    fork: Fork, name: str, text: str, line: int, why: str
) -> None:
    (fork.root / "gitops" / name).write_text(text)
    before = fork.files()
    error = _one_error_line(fork.run("--project-id", PROJECT, "--revision", "v2"), 2, "cannot configure")
    assert f"gitops/{name}:{line}" in error and why in error and "nothing was written" in error
    assert fork.files() == before  # every file, not only the broken one


@pytest.mark.unit
def test_edits_keep_quotes_comments_flow_style_merges_and_json(tmp_path: Path) -> None:
    gitops = tmp_path / "gitops"
    gitops.mkdir()
    image = f"{placeholders.REGISTRY}/m@sha256:{'a' * 64}"
    (gitops / "lint.yaml").write_text(f"# config\n{TEMPLATE_LINE}repo_urls: ['{placeholders.REPO_URL}']\n")
    (gitops / "app.yaml").write_text(
        "# an Application  # llm-platform-example in a comment stays\n"
        "base: &base\n"
        f'  repoURL: "{placeholders.REPO_URL}"   # ours\n'
        "  targetRevision: main\n"
        "sources:\n"
        "  - <<: *base\n"
        "    path: gitops/x\n"
        "  - {repoURL: https://charts.example.com, chart: c, targetRevision: main}\n"
        f"images: [{image}, 'oci://{image}']\n"
        "region: us-central1\n"
    )
    (gitops / "m.lock.json").write_text(json.dumps({"image": image}, indent=2) + "\n")
    identity = Identity(repo_url=FORK_URL, revision="v1.2", project_id=PROJECT, region=REGION)
    result = configure(tmp_path, identity)
    new_image = f"{REGISTRY}/m@sha256:{'a' * 64}"
    assert (gitops / "lint.yaml").read_text() == f"# config\nrepo_urls: ['{FORK_URL}']\n"
    assert (gitops / "app.yaml").read_text() == (
        "# an Application  # llm-platform-example in a comment stays\n"
        "base: &base\n"
        f'  repoURL: "{FORK_URL}"   # ours\n'
        "  targetRevision: v1.2\n"
        "sources:\n"
        "  - <<: *base\n"
        "    path: gitops/x\n"
        "  - {repoURL: https://charts.example.com, chart: c, targetRevision: main}\n"
        f"images: [{new_image}, 'oci://{new_image}']\n"
        f"region: {REGION}\n"
    )
    assert (gitops / "m.lock.json").read_text() == json.dumps({"image": new_image}, indent=2) + "\n"
    assert configure(tmp_path, identity).unchanged and not result.unchanged


@pytest.mark.unit
def test_a_revision_yaml_would_not_read_as_a_string_is_refused(tmp_path: Path) -> None:
    (tmp_path / "gitops").mkdir()
    app = tmp_path / "gitops" / "app.yaml"
    app.write_text(f"spec:\n  source:\n    repoURL: {placeholders.REPO_URL}\n    targetRevision: main\n")
    with pytest.raises(InputError, match=r"gitops/app.yaml:4 .*would not read back"):
        configure(tmp_path, Identity(repo_url=FORK_URL, revision="1.0", project_id=PROJECT))
    assert "llm-platform-example" in app.read_text()


@pytest.mark.unit
def test_check_mode_scan_finds_without_identity(tmp_path: Path) -> None:
    (tmp_path / "gitops").mkdir()
    (tmp_path / "gitops" / "a.yaml").write_text(
        f"projectID: {placeholders.PROJECT_ID}\n# {placeholders.MARKER}\n"
    )
    (tmp_path / "gitops" / "README.md").write_text(placeholders.REPO_URL)
    (tmp_path / "gitops" / "run.sh").write_text(f"echo {placeholders.MARKER}\n")
    plan = make_plan(tmp_path, None)
    assert sorted((f.path, f.line, f.kind) for f in plan.found) == [
        ("gitops/a.yaml", 1, "project-id"),
        ("gitops/run.sh", 1, "unknown"),
    ]


def test_the_placeholder_rule_is_off_in_the_template(tmp_path: Path, crds_dir: Path) -> None:
    require_tool("kubectl")
    repo = build_tree(tmp_path / "repo", "config-placeholder")
    cache = tmp_path / "cache"
    template = run_lint(
        [repo / "gitops"], crd_dirs=[crds_dir], cwd=repo, cache_dir=cache, config=LintConfig(template=True)
    )
    assert [f.text() for f in template.findings] == []
    fork = run_lint([repo / "gitops"], crd_dirs=[crds_dir], cwd=repo, cache_dir=cache)
    assert {f.rule_id for f in fork.findings} == {"config-placeholder"}


def test_lint_reports_placeholders_until_configured(fork: Fork, crds_dir: Path, tmp_path: Path) -> None:
    require_tool("kubectl")

    def placeholder_findings() -> list[str]:
        config = load_config(fork.root / "gitops" / "lint.yaml")
        report = run_lint(
            [fork.root / "gitops"],
            crd_dirs=[crds_dir],
            cwd=fork.root,
            cache_dir=tmp_path / "cache",
            config=config,
        )
        return [f.text() for f in report.findings if f.rule_id == "config-placeholder"]

    _without_template_line(fork.root)
    found = placeholder_findings()
    assert len(found) >= 25 and any("gitops/platform/overlays/gke/secret-store.yaml:10" in f for f in found)
    assert fork.run("--project-id", PROJECT, "--region", REGION).returncode == 0
    assert placeholder_findings() == []

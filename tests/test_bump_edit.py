"""`llm-platform bump` in a local checkout: exact byte edits for every reference style, the lock, the commit.

Every test drives the real CLI in a subprocess against a real git repository in tmp_path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from llm_platform.bump.locate import compose_documents, scan_text
from llm_platform.bump.refs import RepositoryMatcher
from llm_platform.bump.splice import splice_digests, verify_splice
from llm_platform.errors import SpliceVerificationError
from llm_platform.modelcar.spec import load_spec, spec_sha256
from tests.support.bump_cli import CliRun, run_cli
from tests.support.bump_fixture import (
    AWQ,
    HF_COMMIT,
    TEMPLATES,
    R,
    commit_all,
    digest_of,
    git,
    make_repo,
    render,
)

OLD = {"qwen-a": digest_of("old"), "qwen-a-awq": digest_of("awq-old")}
NEW = digest_of("new")


@pytest.fixture
def bump(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    def run(repo: Path, env: dict[str, str], *args: str) -> CliRun:
        return run_cli(["bump", "--repo", str(repo), *args], env, monkeypatch, capsys)

    return run


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> Path:
    return make_repo(tmp_path / "repo", env, OLD)


def status(repo: Path, env: dict[str, str]) -> str:
    return git(repo, "status", "--porcelain", env=env)


def test_commit_changes_exactly_the_digest_in_every_reference_style(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    before = git(repo, "rev-parse", "HEAD", env=env).strip()
    proc = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit", "--hf-commit", HF_COMMIT)
    assert proc.returncode == 0, proc.stderr
    sha = proc.stdout.strip()
    assert sha == git(repo, "rev-parse", "HEAD", env=env).strip() and sha != before
    assert git(repo, "rev-parse", "HEAD~1", env=env).strip() == before

    # Every file is byte-identical to its template rendered with the new digest for qwen-a only: the
    # qwen-a-awq prefix twin, the mirror entry, comments, CRLF endings, quoting, anchors all stay.
    expected = {rel: render(text, {**OLD, "qwen-a": NEW}) for rel, text in TEMPLATES.items()}
    for rel, text in expected.items():
        assert (repo / rel).read_bytes() == text.encode(), rel

    # The diff: one line per digest occurrence, each line changed only in its digest.
    numstat = git(repo, "diff", "--numstat", "HEAD~1", "HEAD", env=env).splitlines()
    assert sorted(numstat) == sorted(
        [
            "1\t1\tgitops/apps/qwen-a/inferenceservice.yaml",
            "1\t1\tgitops/apps/qwen-a/pod-crlf.yaml",
            "2\t2\tgitops/apps/qwen-a/vllm.yaml",
            "1\t1\tgitops/argocd/qwen-a.yaml",
            "2\t2\tgitops/charts/vllm/values.yaml",
            "1\t1\tgitops/overlays/prod/kustomization.yaml",
            "5\t0\tmodelcars/qwen-a.lock.json",
        ]
    )
    diff = git(repo, "diff", "-U0", "HEAD~1", "HEAD", "--", "gitops", env=env).splitlines()
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    assert len(removed) == len(added) == 8
    assert [line.replace(OLD["qwen-a"], NEW) for line in removed] == added
    assert all(OLD["qwen-a"] in line for line in removed)

    # The lock, canonical JSON beside the spec.
    spec = load_spec(repo / "modelcars/qwen-a.yaml")
    assert json.loads((repo / "modelcars/qwen-a.lock.json").read_text()) == {
        "spec_sha256": spec_sha256(spec),
        "hf_commit": HF_COMMIT,
        "image": f"{R}@{NEW}",
    }

    # Subject and parseable trailers.
    message = git(repo, "log", "-1", "--format=%B", env=env)
    assert (
        message.splitlines()[0] == f"bump(qwen-a): modelcar image to {NEW[7:19]} (was {OLD['qwen-a'][7:19]})"
    )
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", env=env).strip().splitlines()
    assert trailers == [
        "Model: qwen-a",
        "HF-Repo: Example/qwen-a",
        f"HF-Commit: {HF_COMMIT}",
        f"Image: {R}@{NEW}",
        f"Previous-Digest: {OLD['qwen-a']}",
    ]
    assert status(repo, env) == ""


def test_second_identical_bump_makes_no_commit(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    args = ("--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit", "--hf-commit", HF_COMMIT)
    first = bump(repo, env, *args)
    assert first.returncode == 0, first.stderr
    head = git(repo, "rev-parse", "HEAD", env=env).strip()
    second = bump(repo, env, *args)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "unchanged\n"
    assert "nothing to change" in second.stderr
    assert git(repo, "rev-parse", "HEAD", env=env).strip() == head
    # The lock remembers the HF commit, so the option is not needed again for the same image.
    third = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit")
    assert third.returncode == 0 and third.stdout == "unchanged\n", third.stderr


def test_without_commit_only_the_work_tree_changes(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    head = git(repo, "rev-parse", "HEAD", env=env).strip()
    proc = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--hf-commit", HF_COMMIT, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "edited" and result["commit"] is None
    assert result["previous_digests"] == [OLD["qwen-a"]]
    assert {(r["path"], r["form"]) for r in result["references"]} == {
        ("gitops/apps/qwen-a/inferenceservice.yaml", "uri"),
        ("gitops/apps/qwen-a/pod-crlf.yaml", "image"),
        ("gitops/apps/qwen-a/vllm.yaml", "image"),
        ("gitops/argocd/qwen-a.yaml", "image"),
        ("gitops/charts/vllm/values.yaml", "digest-field"),
        ("gitops/charts/vllm/values.yaml", "image"),
        ("gitops/overlays/prod/kustomization.yaml", "digest-field"),
    }
    assert len(result["references"]) == 8
    assert git(repo, "rev-parse", "HEAD", env=env).strip() == head
    assert sorted(status(repo, env).splitlines()) == sorted(
        [f" M {p}" for p in result["files"] if p.startswith("gitops/")] + ["?? modelcars/qwen-a.lock.json"]
    )


def _add_file(repo: Path, env: dict[str, str], rel: str, text: str) -> None:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text)
    commit_all(repo, f"add {rel}", env)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (f"kind: Pod\nspec:\n  containers:\n    - name: x\n      image: {R}:v1\n", 5, "tag reference"),
        (f"modelcar:\n  repository: {R}\n  tag: v1\n", 2, "a `tag:` but no `digest:`"),
        (f"images:\n- name: placeholder\n  newName: {R}\n  newTag: v1\n", 3, "a `newTag:` but no `digest:`"),
        (f"spec:\n  storageUri: oci://{R}\n", 2, "without a digest"),
        (f"a: b\nc: [d\nimage: {R}@{digest_of('x')}\n", 3, "not parseable YAML"),
        (f'x:\n  image: "{R}@\\u0073ha256:{OLD["qwen-a"][7:]}"\n', 2, "not written literally"),
    ],
    ids=["container-tag", "helm-tag", "kustomize-newtag", "uri-bare", "unparseable", "escaped-quoted"],
)
def test_reference_that_cannot_be_bumped_is_an_error_naming_file_and_line(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun], text: str, line: int, words: str
) -> None:
    _add_file(repo, env, "gitops/apps/bad.yaml", text)
    proc = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit", "--hf-commit", HF_COMMIT)
    assert proc.returncode == 2, proc.stderr
    assert f"gitops/apps/bad.yaml:{line}" in proc.stderr and words in proc.stderr, proc.stderr
    assert proc.stderr.startswith("llm-platform: error: ")
    assert proc.stdout == ""
    assert status(repo, env) == ""  # nothing written


def test_expect_states_the_digest_that_must_be_there(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    wrong = digest_of("someone-else")
    proc = bump(
        repo,
        env,
        "--model",
        "qwen-a",
        "--ref",
        f"{R}@{NEW}",
        "--commit",
        "--hf-commit",
        HF_COMMIT,
        "--expect",
        wrong,
    )
    assert proc.returncode == 3, proc.stderr
    assert f"expected {wrong}" in proc.stderr and "nothing was overwritten" in proc.stderr
    assert status(repo, env) == ""
    ok = bump(
        repo,
        env,
        "--model",
        "qwen-a",
        "--ref",
        f"{R}@{NEW}",
        "--commit",
        "--hf-commit",
        HF_COMMIT,
        "--expect",
        OLD["qwen-a"],
    )
    assert ok.returncode == 0, ok.stderr


def test_bad_input_is_refused_before_anything_is_written(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    cases = [
        (("--model", "qwen-a", "--ref", f"{AWQ}@{NEW}"), "repository differs from modelcars/qwen-a.yaml"),
        (("--model", "qwen-a", "--ref", f"{R}:v1"), "not digest-pinned"),
        (("--model", "qwen-a", "--ref", f"{R}@sha256:abc"), "invalid digest"),
        (("--model", "nope", "--ref", f"{R}@{NEW}"), "no spec modelcars/nope.yaml"),
        (("--model", "qwen-a", "--ref", f"{R}@{NEW}"), "--hf-commit is needed"),
        (("--model", "qwen-a", "--ref", f"{R}@{NEW}", "--hf-commit", "main"), "not a 40-hex commit sha"),
        (("--model", "qwen-a", "--ref", f"{R}@{NEW}", "--pr-branch", "x"), "--pr-branch needs --push"),
        (
            ("--model", "qwen-a", "--ref", f"{R}@{NEW}", "--hf-commit", HF_COMMIT, "--push", "upstream"),
            "no such git remote",
        ),
    ]
    for args, words in cases:
        proc = bump(repo, env, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert words in proc.stderr, (args, proc.stderr)
    assert status(repo, env) == ""


def test_hf_commit_defaults_to_a_pinned_spec_revision(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    pinned = "89abcdef0123456789abcdef0123456789abcdef"
    spec = repo / "modelcars/qwen-a.yaml"
    spec.write_text(spec.read_text().replace("revision: main", f"revision: {pinned}"))
    commit_all(repo, "pin the revision", env)
    contradicting = bump(
        repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit", "--hf-commit", HF_COMMIT
    )
    assert contradicting.returncode == 2 and f"pins huggingface.revision {pinned}" in contradicting.stderr
    proc = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((repo / "modelcars/qwen-a.lock.json").read_text())["hf_commit"] == pinned
    assert f"HF-Commit: {pinned}" in git(repo, "log", "-1", "--format=%B", env=env)


def test_commit_refuses_uncommitted_changes_in_the_files_it_edits(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    values = repo / "gitops/charts/vllm/values.yaml"
    values.write_text(values.read_text() + "# local edit\n")
    proc = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit", "--hf-commit", HF_COMMIT)
    assert proc.returncode == 2 and "uncommitted changes" in proc.stderr, proc.stderr
    assert status(repo, env).splitlines() == [" M gitops/charts/vllm/values.yaml"]
    assert values.read_text().endswith("# local edit\n")


def test_failed_commit_puts_every_file_back(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'policy: no commits today' >&2\nexit 1\n")
    hook.chmod(0o755)
    proc = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit", "--hf-commit", HF_COMMIT)
    assert proc.returncode == 1 and "policy: no commits today" in proc.stderr, proc.stderr
    assert status(repo, env) == ""
    assert not (repo / "modelcars/qwen-a.lock.json").exists()
    for rel, text in TEMPLATES.items():
        assert (repo / rel).read_bytes() == render(text, OLD).encode(), rel


def test_verifier_rejects_an_edit_that_changes_more_than_the_digest() -> None:
    text = render(TEMPLATES["gitops/charts/vllm/values.yaml"], OLD)
    matcher = RepositoryMatcher(R)
    documents = compose_documents(text)
    scan = scan_text(text, "values.yaml", matcher, documents)
    assert len(scan.references) == 2 and not scan.problems
    good = splice_digests(text, scan.references, NEW)
    verify_splice("values.yaml", documents, good, scan.references, NEW, matcher, 2)  # the real edit passes
    # The same splice plus one extra change elsewhere (a value, then a quoting style) must be caught.
    for tampered in (
        good.replace("pullPolicy: IfNotPresent", "pullPolicy: Always"),
        good.replace('tag: ""', "tag: ''"),
    ):
        with pytest.raises(SpliceVerificationError, match="changed more than the digest"):
            verify_splice("values.yaml", documents, tampered, scan.references, NEW, matcher, 2)
    # An edit that misses one of the references is caught by re-extraction.
    partial = splice_digests(text, scan.references[:1], NEW)
    with pytest.raises(SpliceVerificationError):
        verify_splice("values.yaml", documents, partial, scan.references, NEW, matcher, 2)


def test_a_malformed_lock_is_an_error_naming_the_lock_file(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    lock = repo / "modelcars/qwen-a.lock.json"
    lock.write_text('{"spec_sha256": "abc", "hf_commit": "main", "image": "x"}\n')
    commit_all(repo, "a hand-written lock", env)
    proc = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit", "--hf-commit", HF_COMMIT)
    assert proc.returncode == 2, proc.stderr
    assert "modelcars/qwen-a.lock.json: invalid lock" in proc.stderr
    assert "spec_sha256" in proc.stderr and "hf_commit" in proc.stderr and "image" in proc.stderr
    assert status(repo, env) == "" and lock.read_text().startswith('{"spec_sha256": "abc"')


def test_dry_run_prints_the_diff_and_writes_nothing(
    repo: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    proc = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--hf-commit", HF_COMMIT, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    removed = [line[1:] for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in lines if line.startswith("+") and not line.startswith("+++")]
    assert len(removed) == 8 and [line.replace(OLD["qwen-a"], NEW) for line in removed] == added[:8]
    assert "+++ b/modelcars/qwen-a.lock.json" in lines and f'+  "image": "{R}@{NEW}"' in lines
    assert status(repo, env) == ""
    pinned = bump(repo, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit", "--dry-run")
    assert pinned.returncode == 2 and "--dry-run cannot be combined" in pinned.stderr

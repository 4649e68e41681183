"""`llm-platform bump --push`: real remotes (a bare repository, and smart HTTP via git http-backend with
basic auth), real races, no lost update, a clean checkout on failure, and a token that never leaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.bump_cli import CliRun, run_cli
from tests.support.bump_fixture import (
    HF_COMMIT,
    R,
    clone,
    commit_all,
    digest_of,
    git,
    make_bare_remote,
    make_repo,
    repository,
    write_tree,
)
from tests.support.git_http import GitHttpServer
from tests.support.tools import require_tool

CLI = str(Path(sys.executable).parent / "llm-platform")
OLD = {"qwen-a": digest_of("old"), "qwen-a-awq": digest_of("awq-old")}
NEW = digest_of("new")
TOKEN = "tok-3f9a1c77e2d04b6b8e1d"


@pytest.fixture
def bump(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """The real CLI entry point, in-process (the concurrency tests below start real subprocesses)."""

    def run(clone_dir: Path, env: dict[str, str], *args: str, verbose: bool = False) -> CliRun:
        root = ["--verbose"] if verbose else []
        return run_cli([*root, "bump", "--repo", str(clone_dir), *args], env, monkeypatch, capsys)

    return run


@pytest.fixture
def remote(tmp_path: Path, env: dict[str, str]) -> Path:
    source = make_repo(tmp_path / "source", env, OLD)
    return make_bare_remote(source, tmp_path / "remote.git", env)


def tip(repo: Path, env: dict[str, str], ref: str = "refs/heads/main") -> str:
    return git(repo, "rev-parse", ref, env=env).strip()


def show(repo: Path, env: dict[str, str], rev: str, path: str) -> str:
    return git(repo, "show", f"{rev}:{path}", env=env)


def hook(remote: Path, name: str, script: str) -> None:
    path = remote / "hooks" / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def race_main_to_other_on_next_push(remote: Path) -> None:
    """Once, while a push is in flight, move main to refs/heads/other: git then refuses the pushed update."""
    hook(
        remote,
        "pre-receive",
        "if [ ! -e raced ]; then touch raced\n"
        "  env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES"
        " git update-ref refs/heads/main refs/heads/other\nfi\n",
    )


def push_side_branch(remote: Path, tmp: Path, env: dict[str, str], edit_from: str, edit_to: str) -> str:
    """Commit a change (replace text in gitops) on main's tip and push it to refs/heads/other."""
    work = clone(str(remote), tmp, env)
    for rel in ("gitops/overlays/prod/kustomization.yaml", "gitops/apps/qwen-a/inferenceservice.yaml"):
        path = work / rel
        path.write_text(path.read_text().replace(edit_from, edit_to))
    sha = commit_all(work, "someone else's change", env)
    git(work, "push", "-q", "origin", "HEAD:refs/heads/other", env=env)
    return sha


def test_push_lands_and_fast_forwards_the_clean_checkout(
    bump: Callable[..., CliRun], remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    work = clone(str(remote), tmp_path / "work", env)
    base = tip(remote, env)
    proc = bump(
        work, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--push", "origin", "--hf-commit", HF_COMMIT
    )
    assert proc.returncode == 0, proc.stderr
    sha = proc.stdout.strip()
    assert tip(remote, env) == sha and tip(remote, env, "main~1") == base
    assert NEW in show(remote, env, "main", "gitops/apps/qwen-a/inferenceservice.yaml")
    assert (
        git(remote, "log", "-1", "--format=%(trailers:key=Image,valueonly)", env=env).strip() == f"{R}@{NEW}"
    )
    # The local checkout followed (fast-forward) and is clean.
    assert tip(work, env, "HEAD") == sha
    assert git(work, "status", "--porcelain", env=env) == ""
    again = bump(work, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--push", "origin")
    assert again.returncode == 0 and again.stdout == "unchanged\n", again.stderr
    assert tip(remote, env) == sha


def test_rejected_push_refetches_and_rederives_the_edit_on_the_new_tip(
    bump: Callable[..., CliRun], remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    # Someone else's commit (another model's digest in a shared file) lands while our push is in flight:
    # the pre-receive hook moves main under the push, so git refuses our ref update.
    awq_new = digest_of("awq-new")
    other = push_side_branch(remote, tmp_path / "other", env, OLD["qwen-a-awq"], awq_new)
    race_main_to_other_on_next_push(remote)
    work = clone(str(remote), tmp_path / "work", env)
    proc = bump(
        work,
        env,
        "--model",
        "qwen-a",
        "--ref",
        f"{R}@{NEW}",
        "--push",
        "origin/main",
        "--hf-commit",
        HF_COMMIT,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "pushed" and result["attempts"] == 2
    assert "push attempt 1 rejected" in proc.stderr
    assert tip(remote, env) == result["commit"] and tip(remote, env, "main~1") == other
    kustomization = show(remote, env, "main", "gitops/overlays/prod/kustomization.yaml")
    assert awq_new in kustomization and NEW in kustomization  # both updates are there: none lost
    assert OLD["qwen-a"] not in kustomization and OLD["qwen-a-awq"] not in kustomization


def test_concurrent_bump_of_our_model_is_a_conflict_not_an_overwrite(
    bump: Callable[..., CliRun], remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    theirs = digest_of("theirs")
    other = push_side_branch(remote, tmp_path / "other", env, OLD["qwen-a"], theirs)
    race_main_to_other_on_next_push(remote)
    work = clone(str(remote), tmp_path / "work", env)
    before = tip(work, env, "HEAD")
    proc = bump(
        work, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--push", "origin", "--hf-commit", HF_COMMIT
    )
    assert proc.returncode == 3, proc.stderr
    assert f"holds {theirs}" in proc.stderr and "nothing was overwritten" in proc.stderr
    assert proc.stdout == ""
    assert tip(remote, env) == other  # their bump stands
    assert tip(work, env, "HEAD") == before and git(work, "status", "--porcelain", env=env) == ""


def test_when_the_new_tip_already_holds_our_digest_the_bump_is_done(
    bump: Callable[..., CliRun], remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    # The same bump, made elsewhere, lands first.
    twin = clone(str(remote), tmp_path / "twin", env)
    made = bump(twin, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--commit", "--hf-commit", HF_COMMIT)
    assert made.returncode == 0, made.stderr
    git(twin, "push", "-q", "origin", "HEAD:refs/heads/other", env=env)
    race_main_to_other_on_next_push(remote)
    work = clone(str(remote), tmp_path / "work", env)
    proc = bump(
        work, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--push", "origin", "--hf-commit", HF_COMMIT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "unchanged\n"
    assert tip(remote, env) == made.stdout.strip()


def test_same_model_two_digests_one_lands_the_other_conflicts(
    remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    digests = [digest_of("first-build"), digest_of("second-build")]
    clones = [clone(str(remote), tmp_path / f"w{i}", env) for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                CLI,
                "bump",
                "--repo",
                str(work),
                "--model",
                "qwen-a",
                "--ref",
                f"{R}@{digest}",
                "--push",
                "origin",
                "--expect",
                OLD["qwen-a"],
                "--hf-commit",
                HF_COMMIT,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for work, digest in zip(clones, digests, strict=True)
    ]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 3], outcomes
    winner = next(i for i, (code, _, _) in enumerate(outcomes) if code == 0)
    loser = 1 - winner
    assert tip(remote, env) == outcomes[winner][1].strip()
    assert f"expected {OLD['qwen-a']}" in outcomes[loser][2]
    landed = show(remote, env, "main", "gitops/apps/qwen-a/vllm.yaml")
    assert digests[winner] in landed and digests[loser] not in landed and OLD["qwen-a"] not in landed
    lock = json.loads(show(remote, env, "main", "modelcars/qwen-a.lock.json"))
    assert lock["image"] == f"{R}@{digests[winner]}"


def assert_untouched(work: Path, env: dict[str, str], head: str) -> None:
    assert tip(work, env, "HEAD") == head and tip(work, env, "refs/heads/main") == head
    assert git(work, "status", "--porcelain", "--ignored", env=env) == ""
    assert not (work / "modelcars/qwen-a.lock.json").exists()
    assert OLD["qwen-a"] in (work / "gitops/apps/qwen-a/vllm.yaml").read_text()


def counting_hook(remote: Path, name: str, body: str) -> Path:
    """A hook that counts its runs in `<remote>/<name>.runs`, then runs `body`."""
    runs = remote / f"{name}.runs"
    hook(remote, name, f"echo run >> {runs}\n{body}")
    return runs


def test_a_declined_push_ends_at_once_with_the_remotes_message(
    bump: Callable[..., CliRun], remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    runs = counting_hook(remote, "pre-receive", "echo 'policy: bumps need a ticket (POL-7)' >&2\nexit 1\n")
    work = clone(str(remote), tmp_path / "work", env)
    head, remote_tip = tip(work, env, "HEAD"), tip(remote, env)
    proc = bump(
        work, env, "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--push", "origin", "--hf-commit", HF_COMMIT
    )
    assert proc.returncode == 1, proc.stderr
    assert "refused by the remote ([remote rejected] (pre-receive hook declined))" in proc.stderr, proc.stderr
    assert "policy: bumps need a ticket (POL-7)" in proc.stderr and "not retried" in proc.stderr
    assert "push attempt" not in proc.stderr and "time(s)" not in proc.stderr
    assert runs.read_text().count("run") == 1  # asked once: a refusal is not retried
    assert proc.stdout == ""
    assert tip(remote, env) == remote_tip
    assert_untouched(work, env, head)


def test_a_protected_branch_is_refused_at_once_and_a_review_branch_still_lands(
    bump: Callable[..., CliRun], remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    # The update hook runs per ref, as a forge's branch protection does.
    runs = counting_hook(
        remote,
        "update",
        'if [ "$1" = refs/heads/main ]; then\n'
        "  echo 'error: GH006: Protected branch update failed for refs/heads/main.' >&2\n  exit 1\nfi\n",
    )
    work = clone(str(remote), tmp_path / "work", env)
    head, remote_tip = tip(work, env, "HEAD"), tip(remote, env)
    args = ("--model", "qwen-a", "--ref", f"{R}@{NEW}", "--hf-commit", HF_COMMIT, "--push", "origin/main")
    proc = bump(work, env, *args, "--max-attempts", "5")
    assert proc.returncode == 1, proc.stderr
    assert "GH006: Protected branch update failed for refs/heads/main." in proc.stderr
    assert "hook declined" in proc.stderr and "not retried" in proc.stderr
    assert runs.read_text().count("run") == 1
    assert tip(remote, env) == remote_tip
    assert_untouched(work, env, head)
    review = bump(work, env, *args, "--pr-branch", "bump/qwen-a")
    assert review.returncode == 0, review.stderr
    assert tip(remote, env, "refs/heads/bump/qwen-a") == review.stdout.strip()


def test_a_push_that_keeps_racing_is_retried_up_to_the_limit(
    bump: Callable[..., CliRun], remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    # Every push loses the race: while it is in flight, main gets a new commit (its tree unchanged).
    runs = counting_hook(
        remote,
        "pre-receive",
        "unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n"
        "export GIT_AUTHOR_NAME=racer GIT_AUTHOR_EMAIL=racer@example.invalid\n"
        "export GIT_COMMITTER_NAME=racer GIT_COMMITTER_EMAIL=racer@example.invalid\n"
        "moved=$(git commit-tree -p refs/heads/main -m race 'refs/heads/main^{tree}')\n"
        "git update-ref refs/heads/main $moved\n",
    )
    work = clone(str(remote), tmp_path / "work", env)
    head = tip(work, env, "HEAD")
    proc = bump(
        work,
        env,
        "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--push", "origin", "--max-attempts", "3",
        "--hf-commit", HF_COMMIT,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "failed 3 time(s)" in proc.stderr, proc.stderr
    assert proc.stderr.count("rejected (race:") == 2  # attempts 1 and 2 were retried, 3 was the last
    assert runs.read_text().count("run") == 3
    assert OLD["qwen-a"] in show(remote, env, "main", "gitops/apps/qwen-a/vllm.yaml")
    assert_untouched(work, env, head)


def test_pr_branch_gets_the_commit_and_main_stays(
    bump: Callable[..., CliRun], remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    work = clone(str(remote), tmp_path / "work", env)
    main = tip(remote, env)
    args = (
        "--model",
        "qwen-a",
        "--ref",
        f"{R}@{NEW}",
        "--push",
        "origin/main",
        "--pr-branch",
        "bump/qwen-a",
        "--hf-commit",
        HF_COMMIT,
    )
    proc = bump(work, env, *args)
    assert proc.returncode == 0, proc.stderr
    sha = proc.stdout.strip()
    assert tip(remote, env) == main
    assert tip(remote, env, "refs/heads/bump/qwen-a") == sha and tip(remote, env, "bump/qwen-a~1") == main
    assert tip(work, env, "HEAD") == main and git(work, "status", "--porcelain", env=env) == ""
    again = bump(work, env, *args)
    assert again.returncode == 0 and again.stdout == "unchanged\n", again.stderr
    # main moves on: the review branch is rebuilt on the new base (replacing only what it saw).
    side = push_side_branch(remote, tmp_path / "other", env, OLD["qwen-a-awq"], digest_of("awq-new"))
    git(remote, "update-ref", "refs/heads/main", side, env=env)
    moved = bump(work, env, *args)
    assert moved.returncode == 0, moved.stderr
    assert tip(remote, env, "bump/qwen-a~1") == side and tip(remote, env, "refs/heads/bump/qwen-a") != sha


# --- over smart HTTP with a token ---


@pytest.fixture
def http_remote(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[GitHttpServer, Path]]:
    models = [f"m{i}" for i in range(10)]
    source = make_repo(tmp_path / "source", env, OLD, extra_models=models)
    files = {
        f"gitops/apps/{m}/inferenceservice.yaml": (
            f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {m}\n"
            f"spec:\n  predictor:\n    model:\n      storageUri: oci://{repository(m)}@{digest_of(m + '-old')}\n"
        )
        for m in models
    }
    # One file shared by all ten: concurrent edits of the same file must each be re-derived, not merged.
    files["gitops/shared/kustomization.yaml"] = "images:\n" + "".join(
        f"# {m}\n- name: {m}\n  newName: {repository(m)}\n  digest: {digest_of(m + '-old')}\n" for m in models
    )
    write_tree(source, files)
    commit_all(source, "ten models", env)
    root = tmp_path / "srv"
    root.mkdir()
    bare = make_bare_remote(source, root / "fleet.git", env)
    server = GitHttpServer(project_root=root, username="bumper", token=TOKEN).start()
    try:
        yield server, bare
    finally:
        server.stop()


def http_clone(server: GitHttpServer, bare: Path, dest: Path, env: dict[str, str]) -> Path:
    """A clone whose origin is the HTTP remote (cloned from disk; every bump talks HTTP)."""
    work = clone(str(bare), dest, env)
    git(work, "remote", "set-url", "origin", f"{server.url}/fleet.git", env=env)
    return work


def test_ten_concurrent_bumps_of_ten_models_all_land(
    http_remote: tuple[GitHttpServer, Path], tmp_path: Path, env: dict[str, str]
) -> None:
    server, bare = http_remote
    models = [f"m{i}" for i in range(10)]
    start = tip(bare, env)
    token_env = {**env, "GIT_TOKEN": TOKEN, "GIT_USERNAME": "bumper"}
    procs = {}
    for m in models:
        work = http_clone(server, bare, tmp_path / f"c-{m}", env)
        procs[m] = subprocess.Popen(
            [
                CLI,
                "bump",
                "--repo",
                str(work),
                "--model",
                m,
                "--ref",
                f"{repository(m)}@{digest_of(m + '-new')}",
                "--push",
                "origin",
                "--hf-commit",
                HF_COMMIT,
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=token_env,
        )
    results = {}
    for m, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{m}: {err}"
        results[m] = json.loads(out)
    history = git(bare, "rev-list", "--first-parent", f"{start}..main", env=env).split()
    assert len(history) == 10 and {r["commit"] for r in results.values()} == set(history)
    shared = show(bare, env, "main", "gitops/shared/kustomization.yaml")
    for m in models:
        assert f"  digest: {digest_of(m + '-new')}\n" in shared
        assert digest_of(m + "-new") in show(bare, env, "main", f"gitops/apps/{m}/inferenceservice.yaml")
        lock = json.loads(show(bare, env, "main", f"modelcars/{m}.lock.json"))
        assert lock["image"] == f"{repository(m)}@{digest_of(m + '-new')}"
    assert sum(r["attempts"] for r in results.values()) > 10  # they really raced and retried
    assert server.rejected > 0 and not any(TOKEN in request for request in server.requests)


def test_token_never_appears_in_output_config_commit_or_command_lines(
    bump: Callable[..., CliRun], http_remote: tuple[GitHttpServer, Path], tmp_path: Path, env: dict[str, str]
) -> None:
    server, bare = http_remote
    work = http_clone(server, bare, tmp_path / "work", env)
    # A git on PATH that records every command line it is given, then runs the real git.
    wrapper_dir = tmp_path / "wrapper"
    wrapper_dir.mkdir()
    argv_log = tmp_path / "git-argv.log"
    (wrapper_dir / "git").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> {argv_log}\nexec {require_tool("git")} "$@"\n'
    )
    (wrapper_dir / "git").chmod(0o755)
    run_env = {
        **env,
        "GIT_TOKEN": TOKEN,
        "GIT_USERNAME": "bumper",
        "PATH": f"{wrapper_dir}{os.pathsep}{env['PATH']}",
    }

    wrong = bump(
        work,
        {**run_env, "GIT_TOKEN": TOKEN + "-wrong"},
        "--model",
        "qwen-a",
        "--ref",
        f"{R}@{NEW}",
        "--push",
        "origin",
        "--hf-commit",
        HF_COMMIT,
        verbose=True,
    )
    assert wrong.returncode == 1 and "Authentication failed" in wrong.stderr, wrong.stderr
    assert "failed 1" not in wrong.stderr  # an auth failure is not retried
    assert TOKEN not in wrong.stdout + wrong.stderr

    proc = bump(
        work,
        run_env,
        "--model",
        "qwen-a",
        "--ref",
        f"{R}@{NEW}",
        "--push",
        "origin",
        "--hf-commit",
        HF_COMMIT,
        verbose=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert tip(bare, env) == proc.stdout.strip()

    commands = argv_log.read_text()
    assert "credential.helper=" in commands and "push" in commands  # the wrapper saw the network commands
    assert TOKEN not in proc.stdout + proc.stderr
    assert TOKEN not in commands
    assert TOKEN not in (work / ".git/config").read_text()
    assert all(TOKEN not in request for request in server.requests)
    for repo in (work, bare):
        objects = subprocess.run(
            [require_tool("git"), "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"],
            capture_output=True,
            env=env,
            check=True,
        ).stdout
        assert TOKEN.encode() not in objects
        for path in (repo / ".git" if (repo / ".git").is_dir() else repo).rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def test_a_token_that_may_not_push_ends_at_once(
    bump: Callable[..., CliRun], http_remote: tuple[GitHttpServer, Path], tmp_path: Path, env: dict[str, str]
) -> None:
    server, bare = http_remote
    server.read_only = True
    work = http_clone(server, bare, tmp_path / "work", env)
    before = tip(bare, env)
    proc = bump(
        work,
        {**env, "GIT_TOKEN": TOKEN, "GIT_USERNAME": "bumper"},
        "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--push", "origin", "--hf-commit", HF_COMMIT,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "403" in proc.stderr and "refused by the remote" in proc.stderr, proc.stderr
    assert "push attempt" not in proc.stderr
    assert server.denied_pushes == 1  # one push, no retry
    assert tip(bare, env) == before
    assert TOKEN not in proc.stderr + proc.stdout


def test_the_remotes_refusal_is_quoted_with_the_token_masked(
    bump: Callable[..., CliRun], http_remote: tuple[GitHttpServer, Path], tmp_path: Path, env: dict[str, str]
) -> None:
    server, bare = http_remote
    # A careless hook that echoes a credential back: the message is shown, the token is not.
    hook(bare, "pre-receive", f"echo 'rejected: token {TOKEN} lacks the deploy role' >&2\nexit 1\n")
    work = http_clone(server, bare, tmp_path / "work", env)
    proc = bump(
        work,
        {**env, "GIT_TOKEN": TOKEN, "GIT_USERNAME": "bumper"},
        "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--push", "origin", "--hf-commit", HF_COMMIT,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "rejected: token *** lacks the deploy role" in proc.stderr, proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout


def test_a_flaky_remote_is_retried_with_backoff(
    bump: Callable[..., CliRun],
    http_remote: tuple[GitHttpServer, Path],
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    server, bare = http_remote
    work = http_clone(server, bare, tmp_path / "work", env)
    server.fail_next = 2  # the first fetch and the retried fetch both get a 503
    proc = bump(
        work,
        {**env, "GIT_TOKEN": TOKEN, "GIT_USERNAME": "bumper"},
        "--model", "qwen-a", "--ref", f"{R}@{NEW}", "--push", "origin", "--hf-commit", HF_COMMIT, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("fetch attempt") == 2 and "503" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["attempts"] == 3 and tip(bare, env) == result["commit"]

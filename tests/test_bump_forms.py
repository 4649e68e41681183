"""`llm-platform bump` on every way of writing the image: the forms it edits, the ones it refuses (naming
file:line, writing nothing) and the mentions it proves are not pins; each with `--commit` on the work
tree and `--push` on a fetched commit, which must give the same answer (the same tree, or the same
refusal). Real git repositories and remotes in tmp_path, the real CLI in-process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.bump_cli import CliRun, bump_argv, run_cli
from tests.support.bump_fixture import (
    HF_COMMIT,
    Link,
    clone,
    digest_of,
    git,
    make_bare_remote,
    make_small_repo,
    repository,
)

R = repository("qwen-a")
REGISTRY, PATH = R.split("/", 1)
OLD = digest_of("forms-old")
NEW = digest_of("forms-new")
OTHER = "docker.io/library/other"

Files = Mapping[str, str | bytes | Link]


@pytest.fixture
def bump(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    def run(repo: Path, env: dict[str, str], *args: str) -> CliRun:
        return run_cli(
            bump_argv(repo, "qwen-a", f"{R}@{NEW}", HF_COMMIT, *args),
            env,
            monkeypatch,
            capsys,
        )

    return run


def render(files: Files, digest: str) -> dict[str, str | bytes | Link]:
    """`%%d%%` is the digest, `%%h%%` its hex alone, `%%D%%` the digest with its hex in uppercase (as some
    tools write it)."""
    hexa = digest.removeprefix("sha256:")
    return {
        rel: content.replace("%%d%%", digest)
        .replace("%%h%%", hexa)
        .replace("%%D%%", f"sha256:{hexa.upper()}")
        if isinstance(content, str)
        else content
        for rel, content in files.items()
    }


def show_bytes(repo: Path, env: dict[str, str], rev: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{rev}:{path}"], capture_output=True, env=env, check=True
    ).stdout


def tree_of(repo: Path, env: dict[str, str], rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{tree}}", env=env).strip()


def ls_tree(repo: Path, env: dict[str, str], rev: str) -> dict[str, str]:
    out = git(repo, "ls-tree", "-r", rev, env=env)
    return {line.split("\t")[1]: line.split()[0] for line in out.splitlines()}


def both_ways(
    tmp_path: Path, env: dict[str, str], bump: Callable[..., CliRun], files: Files
) -> tuple[Path, CliRun, Path, CliRun]:
    """The same tree bumped with --commit (work tree) and with --push (a clone of a bare remote)."""
    source = make_small_repo(tmp_path / "source", env, files)
    remote = make_bare_remote(source, tmp_path / "remote.git", env)
    local = clone(str(remote), tmp_path / "local", env)
    committed = bump(local, env, "--commit")
    pusher = clone(str(remote), tmp_path / "pusher", env)
    pushed = bump(pusher, env, "--push", "origin")
    return local, committed, remote, pushed


# --- forms that are edited: only the digest's characters change ---

EDITED: dict[str, Files] = {
    "split-registry-repository-digest": {
        "gitops/charts/vllm/values.yaml": (
            "# a Bitnami-style image block\n"
            f"modelcar:\n  image:\n    registry: {REGISTRY}\n    repository: {PATH}\n"
            '    tag: ""\n    digest: "%%d%%"  # bumped by CI\n'
        ),
    },
    "split-fields-in-a-flow-mapping": {
        "gitops/values.yaml": f"image: {{registry: {REGISTRY}, repository: '{PATH}', digest: %%d%%}}\n",
    },
    "digest-in-a-merged-mapping": {
        "gitops/values.yaml": (
            "pins: &pins\n  digest: %%d%%\n  pullPolicy: IfNotPresent\n"
            f"modelcar:\n  <<: *pins\n  repository: {R}\n"
            f"sidecar:\n  <<: [*pins]\n  repository: {R}\n"
        ),
    },
    "repository-in-a-merged-mapping": {
        "gitops/values.yaml": f"base: &base\n  repository: {R}\n  digest: %%d%%\ncanary:\n  <<: *base\n  digest: %%d%%\n",
    },
    "json-manifest": {
        "gitops/apps/pod.json": json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "probe"},
                "spec": {"containers": [{"name": "probe", "image": f"{R}:v2@%%d%%"}]},
            },
            indent=2,
        )
        + "\n",
        "gitops/apps/kustomization.yaml": "resources: [pod.json]\n",
    },
    "json-values-split-and-escaped-slashes": {
        "gitops/charts/vllm/values.json": (
            '{"modelcar": {"registry": "'
            + REGISTRY
            + '", "repository": "'
            + PATH
            + '", "digest": "%%d%%"},\n'
            ' "storageUri": "oci:\\/\\/' + R.replace("/", "\\/") + '@%%d%%", "n": [1, 2.5e3, true, null]}\n'
        ),
        "gitops/placeholder.yaml": "a: 1\n",
    },
    "continuation-inside-a-double-quoted-digest": {
        # the hex on a continuation line: `%%h%%` is the digest's hex
        "gitops/pod.yaml": f'spec:\n  image: "{R}@sha256:\\\n    %%h%%"  # wrapped by a tool\n',
    },
    "uppercase-hex-digest": {
        "gitops/pod.yaml": f"spec:\n  image: {R}@%%D%%\n  storageUri: oci://{R}@%%D%%\n",
    },
    "crlf-json-with-bom": {
        "gitops/cfg.json": '\ufeff{\r\n  "image": "' + R + '@%%d%%"\r\n}\r\n',
        "gitops/placeholder.yaml": "a: 1\n",
    },
}


def _expected_after(files: Files) -> dict[str, str | bytes | Link]:
    after = render(files, NEW)
    # An uppercase digest is rewritten in lowercase: the new digest as OCI spells it.
    return {
        rel: c.replace("sha256:" + NEW[7:].upper(), NEW) if isinstance(c, str) else c
        for rel, c in after.items()
    }


@pytest.mark.parametrize("name", sorted(EDITED))
def test_each_form_is_edited_in_its_digest_only_the_same_with_commit_and_push(
    name: str, tmp_path: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    files = EDITED[name]
    local, committed, remote, pushed = both_ways(tmp_path, env, bump, render(files, OLD))
    assert committed.returncode == 0, committed.stderr
    assert pushed.returncode == 0, pushed.stderr
    expected = _expected_after(render(files, NEW))
    for rel, content in expected.items():
        assert isinstance(content, str)
        assert (local / rel).read_bytes() == content.encode(), rel
        assert show_bytes(remote, env, "main", rel) == content.encode(), rel
    # One and the same result: the tree --commit made is the tree --push pushed.
    assert tree_of(local, env, "HEAD") == tree_of(remote, env, "main")
    diff = git(local, "diff", "-U0", "HEAD~1", "HEAD", "--", "gitops", env=env).splitlines()
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    assert removed and len(removed) == len(added)
    for before, after in zip(removed, added, strict=True):
        assert before.replace(OLD[7:], NEW[7:]).replace(OLD[7:].upper(), NEW[7:]) == after


# --- forms that are refused: exit 2, file:line and what to do, nothing written, nothing pushed ---

REFUSED: dict[str, tuple[Files, str, str]] = {
    "digest-written-with-escapes": (
        {"gitops/pod.yaml": f'spec:\n  image: "{R}@\\u0073ha256:%%h%%"\n'},
        "gitops/pod.yaml:2",
        "not written literally",
    ),
    "anchor-shared-with-another-repository": (
        {
            "gitops/values.yaml": f"ours:\n  repository: {R}\n  digest: &d %%d%%\ntheirs:\n  repository: {OTHER}\n  digest: *d\n"
        },
        "gitops/values.yaml:6",
        f"would re-pin {OTHER} too",
    ),
    "merge-that-renames-the-repository": (
        {
            "gitops/values.yaml": f"base: &base\n  repository: {R}\n  digest: %%d%%\nfork:\n  <<: *base\n  repository: {OTHER}\n"
        },
        "gitops/values.yaml:5",
        f"would re-pin {OTHER} too",
    ),
    "merged-digest-shared-with-another-repository": (
        {
            "gitops/values.yaml": (
                f"pins: &pins {{digest: %%d%%}}\nmodelcar: {{<<: *pins, repository: {R}}}\n"
                f"mirror: {{<<: *pins, registry: docker.io, repository: library/other}}\n"
            )
        },
        "gitops/values.yaml:3",
        "would re-pin docker.io/library/other too",
    ),
    "helm-values-in-a-block-scalar": (
        {
            "gitops/argocd/app.yaml": (
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nspec:\n  source:\n    helm:\n"
                f"      values: |\n        modelcar:\n          image: {R}@%%d%%\n"
            )
        },
        "gitops/argocd/app.yaml:8",
        "inside a multi-line string",
    ),
    "shell-script": (
        {
            "gitops/hack/pull.sh": f"#!/bin/sh\n# pulls the model\nskopeo copy docker://{R}@%%d%% dir:/tmp/m\n",
            "gitops/a.yaml": "a: 1\n",
        },
        "gitops/hack/pull.sh:3",
        "in a file bump does not edit",
    ),
    "image-list-text-file": (
        {"gitops/mirror/images.txt": f"{OTHER}:1.0\n{R}@%%d%%\n", "gitops/a.yaml": "a: 1\n"},
        "gitops/mirror/images.txt:2",
        "update it by hand",
    ),
    "inside-a-longer-value": (
        {"gitops/job.yaml": f"spec:\n  args: [--pull, '--image={R}@%%d%%']\n"},
        "gitops/job.yaml:2",
        "a value that bump does not edit",
    ),
    "bare-repository-in-an-annotation": (
        {"gitops/app.yaml": f"metadata:\n  annotations:\n    image-updater/list: {R}\n"},
        "gitops/app.yaml:3",
        "names the image without a digest",
    ),
    "path-without-its-registry": (
        {"gitops/values.yaml": f"image:\n  repository: {PATH}\n  digest: %%d%%\n"},
        "gitops/values.yaml:2",
        f"`registry: {REGISTRY}` beside it",
    ),
    "registry-host-in-uppercase": (
        {"gitops/pod.yaml": f"image: {REGISTRY.upper()}/{PATH}@%%d%%\n"},
        "gitops/pod.yaml:1",
        f"write the repository as {R} (bump matches it exactly)",
    ),
    "json-that-does-not-parse": (
        {"gitops/cfg.json": '{"image": "' + R + '@%%d%%",}\n', "gitops/a.yaml": "a: 1\n"},
        "gitops/cfg.json:1",
        "not parseable JSON",
    ),
    "not-utf8": (
        {"gitops/legacy.yaml": f"# caf\xe9\nimage: {R}@{OLD}\n".encode("latin-1"), "gitops/a.yaml": "a: 1\n"},
        "gitops/legacy.yaml:1",
        "not UTF-8",
    ),
    "symlink-out-of-the-repository": (
        {"gitops/a.yaml": "a: 1\n", "gitops/outside.yaml": Link("../../outside.yaml")},
        "gitops/outside.yaml: a symlink to '../../outside.yaml', outside the repository",
        "point it at a file in the repository",
    ),
    "symlink-to-an-absolute-path": (
        {"gitops/a.yaml": "a: 1\n", "gitops/abs.yaml": Link("/etc/hostname")},
        "gitops/abs.yaml: a symlink to '/etc/hostname', an absolute path",
        "follows symlinks only inside the repository",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_each_unsafe_form_is_refused_naming_the_line_the_same_with_commit_and_push(
    name: str, tmp_path: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    files, where, words = REFUSED[name]
    local, committed, remote, pushed = both_ways(tmp_path, env, bump, render(files, OLD))
    before = git(remote, "rev-parse", "main", env=env).strip()
    for proc in (committed, pushed):
        assert proc.returncode == 2, proc.stderr
        assert where in proc.stderr and words in proc.stderr, proc.stderr
        assert proc.stdout == ""
    # The same refusal, whether the tree came from the work tree or from the fetched commit; a dry run too.
    assert committed.stderr.replace(str(local), "") == pushed.stderr.replace(str(tmp_path / "pusher"), "")
    dry = bump(local, env, "--dry-run")
    assert (dry.returncode, dry.stderr) == (committed.returncode, committed.stderr)
    assert git(local, "status", "--porcelain", "--ignored", env=env) == ""
    assert git(local, "rev-parse", "HEAD", env=env).strip() == before
    assert git(remote, "rev-parse", "main", env=env).strip() == before


# --- mentions that are provably not pins: left as they are, the bump succeeds ---


def test_prose_comments_and_other_repositories_are_left_alone(
    tmp_path: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    kept = {
        "gitops/README.md": f"# Models\n\nThe modelcar is `{R}@{OLD}` (see below).\n\n```yaml\nimage: {R}@{OLD}\n```\n",
        "gitops/docs/notes.rst": f"Pinned: {R}@{OLD}\n",
        "gitops/hack/pull.sh": f"#!/bin/sh\n# was: skopeo copy docker://{R}@{OLD}\n",
        "gitops/cfg.jsonnet": f"// previously {R}@{OLD}\n{{}}\n",
    }
    pod = (
        "# the modelcar, bumped by CI; it used to be\n"
        f"# image: {R}@{OLD}\n"
        "spec:\n"
        f"  image: {R}@{OLD}  # before: {R}@{OLD}\n"
        f"  awq: {R}-awq@{OLD}\n"
        f"  mirror: mirror.example/{R}@{OLD}\n"
        f"  sub: {R}/tokenizer@{OLD}\n"
        f"  other: docker.io/{PATH}@{OLD}\n"
        "  script: |\n"
        f"    # crane digest {R}@{OLD}\n"
        "    echo ready\n"
    )
    kustomization = (
        "images:\n"
        f"- name: {R}\n  newName: {R}-mirror\n  digest: {OLD}\n"
        f"- name: other\n  registry: docker.io\n  repository: {PATH}\n  digest: {OLD}\n"
    )
    files: dict[str, str | bytes | Link] = {
        **kept,
        "gitops/pod.yaml": pod,
        "gitops/kustomization.yaml": kustomization,
    }
    local, committed, remote, pushed = both_ways(tmp_path, env, bump, files)
    assert committed.returncode == 0, committed.stderr
    assert pushed.returncode == 0, pushed.stderr
    assert tree_of(local, env, "HEAD") == tree_of(remote, env, "main")
    for rel, text in {**kept, "gitops/kustomization.yaml": kustomization}.items():
        assert (local / rel).read_text() == text, rel
    assert (local / "gitops/pod.yaml").read_text() == pod.replace(
        f"  image: {R}@{OLD}", f"  image: {R}@{NEW}"
    )


def test_a_digest_aliased_into_a_field_that_names_no_image_changes_with_a_warning(
    tmp_path: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    values = (
        f"modelcar:\n  repository: {R}\n  digest: &pinned {OLD}\nannotations:\n  last-bumped: *pinned\n"
        "status:\n  digest: *pinned\n"
    )
    repo = make_small_repo(tmp_path / "repo", env, {"gitops/values.yaml": values})
    proc = bump(repo, env, "--commit")
    assert proc.returncode == 0, proc.stderr
    assert "gitops/values.yaml:5: `last-bumped` is an alias of the digest at line 3" in proc.stderr
    assert "gitops/values.yaml:7: this `digest:` is the one of line 3" in proc.stderr
    assert (repo / "gitops/values.yaml").read_text() == values.replace(OLD, NEW)


def test_what_git_ignores_in_the_work_tree_is_not_part_of_the_tree(
    tmp_path: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    # Rendered output beside the sources, ignored by git: --commit judges what a commit holds, as --push does.
    files: dict[str, str | bytes | Link] = {
        ".gitignore": "/gitops/rendered/\n*.orig\n",
        "gitops/pod.yaml": f"image: {R}@{OLD}\n",
    }
    source = make_small_repo(tmp_path / "source", env, files)
    remote = make_bare_remote(source, tmp_path / "remote.git", env)
    local = clone(str(remote), tmp_path / "local", env)
    (local / "gitops/rendered").mkdir()
    (local / "gitops/rendered/all.yaml").write_text(f"image: {R}@{OLD}\n")
    (local / "gitops/pod.yaml.orig").write_text(f"image: {R}@{OLD}\n")
    committed = bump(local, env, "--commit")
    assert committed.returncode == 0, committed.stderr
    pusher = clone(str(remote), tmp_path / "pusher", env)
    pushed = bump(pusher, env, "--push", "origin")
    assert pushed.returncode == 0, pushed.stderr
    assert tree_of(local, env, "HEAD") == tree_of(remote, env, "main")
    assert (local / "gitops/rendered/all.yaml").read_text() == f"image: {R}@{OLD}\n"
    # An untracked file that git does not ignore is part of the work tree: it must be dealt with.
    (local / "gitops/rendered/all.yaml").unlink()
    (local / "gitops/extra.sh").write_text(f"crane pull {R}@{NEW} m.tar\ncrane pull {R}@{OLD} old.tar\n")
    again = bump(local, env, "--commit")
    assert again.returncode == 2 and "gitops/extra.sh:2: " in again.stderr, again.stderr


# --- symlinks: followed inside the repository, the real file edited, the link kept ---


def test_symlinks_inside_the_repository_are_followed_and_never_replaced(
    tmp_path: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    shared = f"spec:\n  storageUri: oci://{R}@{OLD}\n"
    files: dict[str, str | bytes | Link] = {
        "shared/serving/inferenceservice.yaml": shared,
        "shared/serving/values.yaml": f"image:\n  repository: {R}\n  digest: {OLD}\n",
        # two links to one file, a link to a directory, a link to a link: one real edit each
        "gitops/prod/inferenceservice.yaml": Link("../../shared/serving/inferenceservice.yaml"),
        "gitops/dev/inferenceservice.yaml": Link("../prod/inferenceservice.yaml"),
        "gitops/serving": Link("../shared/serving"),
        "gitops/kustomization.yaml": "resources: [prod/inferenceservice.yaml]\n",
    }
    local, committed, remote, pushed = both_ways(tmp_path, env, bump, files)
    assert committed.returncode == 0, committed.stderr
    assert pushed.returncode == 0, pushed.stderr
    assert tree_of(local, env, "HEAD") == tree_of(remote, env, "main")
    result = json.loads(git(local, "show", "HEAD:modelcars/qwen-a.lock.json", env=env))
    assert result["image"] == f"{R}@{NEW}"
    modes = ls_tree(local, env, "HEAD")
    for link in ("gitops/prod/inferenceservice.yaml", "gitops/dev/inferenceservice.yaml", "gitops/serving"):
        assert modes[link] == "120000", link
        assert (local / link).is_symlink()
    assert (local / "shared/serving/inferenceservice.yaml").read_text() == shared.replace(OLD, NEW)
    assert (local / "shared/serving/values.yaml").read_text().endswith(f"digest: {NEW}\n")
    changed = git(local, "diff", "--name-only", "HEAD~1", "HEAD", env=env).split()
    assert changed == [
        "modelcars/qwen-a.lock.json",
        "shared/serving/inferenceservice.yaml",
        "shared/serving/values.yaml",
    ]


def test_a_symlinked_lock_is_written_at_its_real_path(
    tmp_path: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    files: dict[str, str | bytes | Link] = {
        "gitops/pod.yaml": f"image: {R}@{OLD}\n",
        "modelcars/qwen-a.lock.json": Link("../locks/qwen-a.lock.json"),
        "locks/.keep": "",
    }
    local, committed, remote, pushed = both_ways(tmp_path, env, bump, files)
    assert committed.returncode == 0, committed.stderr
    assert pushed.returncode == 0, pushed.stderr
    assert tree_of(local, env, "HEAD") == tree_of(remote, env, "main")
    assert (local / "modelcars/qwen-a.lock.json").is_symlink()
    assert os.readlink(local / "modelcars/qwen-a.lock.json") == "../locks/qwen-a.lock.json"
    assert json.loads((local / "locks/qwen-a.lock.json").read_text())["image"] == f"{R}@{NEW}"
    assert ls_tree(local, env, "HEAD")["modelcars/qwen-a.lock.json"] == "120000"


# --- a lock that cannot be written ---


@contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """`directory` made unwritable for this process: by mode bits, or (as root, whom they do not stop) immutable."""
    mode = directory.stat().st_mode
    directory.chmod(0o555)
    immutable = False
    try:
        probe = directory / ".probe"
        try:
            probe.touch()
        except PermissionError:
            pass
        else:  # root: the mode bits did not stop us
            probe.unlink()
            subprocess.run(["chattr", "+i", str(directory)], check=True, capture_output=True)
            immutable = True
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True, capture_output=True)
        directory.chmod(stat.S_IMODE(mode))


def test_a_read_only_modelcars_directory_ends_in_one_line_and_writes_nothing(
    tmp_path: Path, env: dict[str, str], bump: Callable[..., CliRun]
) -> None:
    pod = f"image: {R}@{OLD}\n"
    repo = make_small_repo(tmp_path / "repo", env, {"gitops/a.yaml": pod, "gitops/b.yaml": pod})
    with unwritable(repo / "modelcars"):
        for args in ((), ("--commit",)):
            proc = bump(repo, env, *args)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.count("\n") == 1, proc.stderr  # one line
            assert "modelcars/qwen-a.lock.json: cannot write in modelcars/" in proc.stderr, proc.stderr
            assert "nothing was written" in proc.stderr
            assert git(repo, "status", "--porcelain", "--ignored", env=env) == ""
            assert (repo / "gitops/a.yaml").read_text() == pod and (repo / "gitops/b.yaml").read_text() == pod
            assert not list((repo / "gitops").glob(".*.tmp"))

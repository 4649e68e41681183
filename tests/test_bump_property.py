"""Property: after `bump`, no pin of an old digest of the image is left in the tree, or the bump failed with
exit 2 and changed nothing.

Hypothesis generates GitOps trees: YAML, JSON, Markdown and shell files made of blocks, each block one
way of writing the image (every form bump edits, and mixes of them), a decoy (another repository that
looks alike, a commented-out line, prose) or a form bump must refuse, each holding one of two old
digests or already the new one, some files reached through symlinks. The generator knows what every
block means, so the test judges the result by itself, without the code under test: the exact bytes
every file must have after a successful bump (pins rewritten, everything else as it was), a second
look with another YAML library (PyYAML) that no value still pins an old digest, and whether the bump
had to fail at all.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from llm_platform.bump import bump_model
from llm_platform.errors import PlatformError
from tests.support.bump_cli import bump_argv, run_cli
from tests.support.bump_fixture import (
    HF_COMMIT,
    Link,
    clone,
    digest_of,
    git,
    git_env,
    make_bare_remote,
    make_small_repo,
    repository,
    spec_text,
    write_tree,
)

R = repository("qwen-a")
REGISTRY, PATH = R.split("/", 1)
OLDS = (digest_of("prop-old-1"), digest_of("prop-old-2"))
NEW = digest_of("prop-new")
OTHER = "docker.io/library/other"
ANY_REF = re.compile(rf"^(?:oci://)?{re.escape(R)}(?::[\w.-]+)?@(sha256:[0-9a-fA-F]{{64}})$", re.IGNORECASE)


@dataclass(frozen=True)
class Block:
    """One way of writing the image, as it is before and as it must be after a successful bump."""

    before: str
    after: str
    refused: bool  # the bump must fail because of it


# A form: block number -> its text, with `{d}` for the digest, `{h}` for its hex, `{H}` for its hex in
# uppercase and `{o}` for an old digest (in a comment).
Form = Callable[[int], str]

# YAML blocks: each a top-level key (or a few), so blocks compose into one valid document.
YAML_PINS: dict[str, Form] = {
    "uri": lambda i: f"k{i}:\n  storageUri: oci://{R}@{{d}}\n",
    "image-plain": lambda i: f"k{i}:\n  image: {R}@{{d}}\n",
    "image-single": lambda i: f"k{i}:\n  image: '{R}@{{d}}'\n",
    "image-double": lambda i: f'k{i}: {{image: "{R}@{{d}}", pullPolicy: IfNotPresent}}\n',
    "image-tag": lambda i: f"k{i}:\n  image: {R}:v{i}@{{d}}  # tagged and pinned\n",
    "helm": lambda i: f"k{i}:\n  repository: {R}\n  tag: ''\n  digest: \"{{d}}\"\n",
    "kustomize": lambda i: f"k{i}:\n- name: placeholder-{i}\n  newName: {R}\n  digest: {{d}}\n",
    "kustomize-string": lambda i: f"k{i}:\n  images:\n  - {R}@{{d}}\n",
    "split": lambda i: f"k{i}:\n  registry: {REGISTRY}\n  repository: {PATH}\n  digest: {{d}}\n",
    "split-flow": lambda i: f"k{i}: {{registry: {REGISTRY}, repository: '{PATH}', digest: '{{d}}'}}\n",
    "merged-digest": lambda i: f"p{i}: &p{i}\n  digest: {{d}}\nk{i}:\n  <<: *p{i}\n  repository: {R}\n",
    "anchor-alias": lambda i: f"k{i}: &a{i} {R}@{{d}}\nc{i}: [*a{i}, *a{i}]\n",
    "continuation": lambda i: f'k{i}: "{R}@sha256:\\\n    {{h}}"\n',
    "uppercase-hex": lambda i: f"k{i}: {R}@sha256:{{H}}\n",
    "trailing-comment": lambda i: f"k{i}: {R}@{{d}}  # was {R}@{{o}}\n",
}
YAML_DECOYS: dict[str, Form] = {
    "suffix": lambda i: f"k{i}: {R}-other@{{d}}\n",
    "mirror": lambda i: f"k{i}: mirror.example/{R}@{{d}}\n",
    "sub": lambda i: f"k{i}: {R}/tokenizer@{{d}}\n",
    "other-repository": lambda i: f"k{i}:\n  repository: {OTHER}\n  digest: {{d}}\n",
    "other-registry": lambda i: f"k{i}:\n  registry: docker.io\n  repository: {PATH}\n  digest: {{d}}\n",
    "renamed": lambda i: f"k{i}:\n- name: {R}\n  newName: {R}-mirror\n  digest: {{d}}\n",
    "commented": lambda i: f"# k{i}: {R}@{{d}}\nk{i}: 1\n",
    "commented-in-block": lambda i: f"k{i}: |\n  # crane digest {R}@{{d}}\n  true\n",
}
# Refused while they hold an old digest (with the new one there is nothing to change).
YAML_REFUSED_WHEN_STALE: dict[str, Form] = {
    "args": lambda i: f"k{i}: [--pull, --image={R}@{{d}}]\n",
    "block-scalar": lambda i: f"k{i}:\n  values: |\n    image: {R}@{{d}}\n",
    "escaped-digest": lambda i: f'k{i}: "{R}@\\u0073ha256:{{h}}"\n',
    "path-without-registry": lambda i: f"k{i}:\n  repository: {PATH}\n  digest: {{d}}\n",
    "shared-with-other": lambda i: (
        f"k{i}:\n  repository: {R}\n  digest: &s{i} {{d}}\nz{i}:\n  repository: {OTHER}\n  digest: *s{i}\n"
    ),
    "uppercase-host": lambda i: f"k{i}: {REGISTRY.upper()}/{PATH}@{{d}}\n",
}
# Refused whatever the digest: they name the image without one.
YAML_ALWAYS_REFUSED: dict[str, Form] = {
    "tag-only": lambda i: f"k{i}: {R}:v1\n",
    "bare": lambda i: f"k{i}:\n  note: {R}\n",
}
JSON_PINS: dict[str, Form] = {
    "value": lambda i: f'"k{i}": "{R}@{{d}}"',
    "uri-escaped-slashes": lambda i: '"k' + str(i) + '": "oci:\\/\\/' + R.replace("/", "\\/") + '@{d}"',
    "helm": lambda i: f'"k{i}": {{"repository": "{R}", "digest": "{{d}}"}}',
    "split": lambda i: f'"k{i}": {{"registry": "{REGISTRY}", "repository": "{PATH}", "digest": "{{d}}"}}',
}
JSON_DECOYS: dict[str, Form] = {"suffix": lambda i: f'"k{i}": "{R}-other@{{d}}"'}
JSON_REFUSED_WHEN_STALE: dict[str, Form] = {"args": lambda i: f'"k{i}": ["--image={R}@{{d}}"]'}


def fill(text: str, digest: str, comment_digest: str) -> str:
    hexa = digest.removeprefix("sha256:")
    return (
        text.replace("{d}", digest)
        .replace("{h}", hexa)
        .replace("{H}", hexa.upper())
        .replace("{o}", comment_digest)
    )


@st.composite
def blocks(draw: st.DrawFn, kind: str, index: int, refusable: bool) -> Block:
    """One block of a file of `kind` ("yaml", "json", "md", "sh"); a form bump refuses only if `refusable`."""
    digest = draw(st.sampled_from([*OLDS, NEW]))
    comment = draw(st.sampled_from(OLDS))
    if kind == "md":
        text = f"- the modelcar {R}@{{d}}, see `{R}`\n"
        return Block(fill(text, digest, comment), fill(text, digest, comment), refused=False)
    if kind == "sh":
        if not refusable or draw(st.booleans()):
            text = f"# skopeo copy docker://{R}@{{d}} dir:/m\n"
            return Block(fill(text, digest, comment), fill(text, digest, comment), refused=False)
        text = f"skopeo copy docker://{R}@{{d}} dir:/m\n"
        return Block(fill(text, digest, comment), fill(text, digest, comment), refused=digest != NEW)
    pins, decoys, stale_refused = (
        (YAML_PINS, YAML_DECOYS, YAML_REFUSED_WHEN_STALE)
        if kind == "yaml"
        else (JSON_PINS, JSON_DECOYS, JSON_REFUSED_WHEN_STALE)
    )
    always = YAML_ALWAYS_REFUSED if kind == "yaml" else {}
    groups = ["pin", "pin", "pin", "decoy"]
    if refusable:
        groups += ["refused", "always"] if always else ["refused"]
    group = draw(st.sampled_from(groups))
    table = {"pin": pins, "decoy": decoys, "refused": stale_refused, "always": always}[group]
    name = draw(st.sampled_from(sorted(table)))
    text = table[name](index)
    before = fill(text, digest, comment)
    if group == "pin":
        # Rewritten to the new digest (in lowercase, even where the old one was written in uppercase).
        after = fill(text.replace("{H}", "{h}"), NEW, comment)
        return Block(before, after, refused=False)
    refused = group == "always" or (group == "refused" and digest != NEW)
    return Block(before, before, refused=refused)


@dataclass(frozen=True)
class Tree:
    files: dict[str, list[Block]]
    links: dict[str, str]  # symlink path -> target, each to one of the files

    def render(self, after: bool) -> dict[str, str]:
        out = {}
        for path, file_blocks in self.files.items():
            parts = [b.after if after else b.before for b in file_blocks]
            if path.endswith(".json"):
                out[path] = "{\n  " + ",\n  ".join(parts) + "\n}\n"
            elif path.endswith(".md"):
                out[path] = "# Notes\n\n" + "".join(parts)
            elif path.endswith(".sh"):
                out[path] = "#!/bin/sh\n" + "".join(parts)
            else:
                out[path] = "# generated\n" + "".join(parts)
        return out

    @property
    def refused(self) -> bool:
        return any(b.refused for file_blocks in self.files.values() for b in file_blocks)


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    kinds = draw(
        st.lists(st.sampled_from(["yaml", "yaml", "yaml", "json", "md", "sh"]), min_size=1, max_size=4)
    )
    kinds = ["yaml", *kinds]  # bump needs a YAML file in the tree
    files: dict[str, list[Block]] = {}
    counter = 0
    refusable = draw(st.booleans())  # half the trees hold only forms bump edits or leaves alone
    for number, kind in enumerate(kinds):
        directory = draw(st.sampled_from(["gitops/apps", "gitops/charts/m", "shared"]))
        path = f"{directory}/f{number}.{kind}"
        count = draw(st.integers(min_value=1, max_value=4))
        file_blocks = []
        for _ in range(count):
            file_blocks.append(draw(blocks(kind, counter, refusable)))
            counter += 1
        files[path] = file_blocks
    # Files under shared/ are part of the tree only through a symlink (a file or a directory link).
    links: dict[str, str] = {}
    if any(p.startswith("shared/") for p in files):
        if draw(st.booleans()):
            links["gitops/shared"] = "../shared"
        else:
            for path in files:
                if path.startswith("shared/"):
                    links[f"gitops/linked/{Path(path).name}"] = f"../../{path}"
    first = next(iter(files))
    if first.startswith("gitops/") and draw(st.booleans()):
        # A second way to the same file: it is still edited once, at its real path.
        links[f"gitops/alias/{Path(first).name}"] = "../" + first.removeprefix("gitops/")
    return Tree(files, links)


def old_pins_left(root: Path, paths: list[str]) -> list[str]:
    """An independent look (PyYAML, json) at the YAML and JSON files: values that still pin an old digest."""
    found: list[str] = []

    def walk(value: object, where: str) -> None:
        if isinstance(value, dict):
            repo = value.get("repository") or value.get("newName") or value.get("repo")
            if isinstance(value.get("registry"), str) and isinstance(repo, str):
                repo = f"{value['registry']}/{repo}"
            if repo == R and str(value.get("digest", "")).lower() in OLDS:
                found.append(f"{where}: {value}")
            for key, inner in value.items():
                walk(inner, f"{where}.{key}")
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, f"{where}[{index}]")
        elif isinstance(value, str):
            match = ANY_REF.match(value)
            if match and match.group(1).lower() in OLDS:
                found.append(f"{where}: {value}")

    for path in paths:
        text = (root / path).read_text()
        if path.endswith(".json"):
            walk(json.loads(text), path)
        elif path.endswith(".yaml"):
            for number, document in enumerate(yaml.safe_load_all(text)):
                walk(document, f"{path}#{number}")
    return found


def lay_out(root: Path, tree: Tree) -> None:
    write_tree(
        root,
        {
            "modelcars/qwen-a.yaml": spec_text("qwen-a"),
            **tree.render(after=False),
            **{link: Link(target) for link, target in tree.links.items()},
        },
    )


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every link's target."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".git"):
            continue
        if path.is_symlink():
            out[rel] = "-> " + str(path.readlink())
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(trees())
def test_after_a_bump_no_pin_of_an_old_digest_remains_or_the_bump_failed_and_changed_nothing(
    tree: Tree,
) -> None:
    with tempfile.TemporaryDirectory(prefix="bump-property-") as tmp:
        root = Path(tmp)
        lay_out(root, tree)
        before = snapshot(root)
        try:
            result = bump_model("qwen-a", f"{R}@{NEW}", repo=root, hf_commit=HF_COMMIT)
        except PlatformError as exc:
            event("refused")
            assert exc.exit_code == 2, exc
            assert tree.refused, f"refused a tree bump can edit: {exc}"
            assert snapshot(root) == before  # nothing changed, no lock written
            for path, file_blocks in tree.files.items():
                if any(b.refused for b in file_blocks):
                    assert path in str(exc), (path, str(exc))  # each refused file is named
            return
        event("bumped")
        assert not tree.refused, f"bumped a tree with a form it must refuse: {tree.render(after=False)}"
        assert result.status == "edited"
        expected = tree.render(after=True)
        for path, text in expected.items():
            assert (root / path).read_text() == text, path
        for link, target in tree.links.items():
            assert (root / link).is_symlink() and str((root / link).readlink()) == target
        assert old_pins_left(root, [p for p in expected if p.endswith((".yaml", ".json"))]) == []
        lock = json.loads((root / "modelcars/qwen-a.lock.json").read_text())
        assert lock["image"] == f"{R}@{NEW}"


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(tree=trees())
def test_commit_and_push_give_the_same_answer_on_generated_trees(
    tree: Tree,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = tmp_path_factory.mktemp("bump-property-git")
    env = git_env(base)
    files = {**tree.render(after=False), **{link: Link(target) for link, target in tree.links.items()}}
    source = make_small_repo(base / "source", env, files)
    remote = make_bare_remote(source, base / "remote.git", env)
    answers = []
    for mode in ("commit", "push"):
        work = clone(str(remote), base / mode, env)
        args = ["--commit"] if mode == "commit" else ["--push", "origin"]
        proc = run_cli(
            bump_argv(work, "qwen-a", f"{R}@{NEW}", HF_COMMIT, *args),
            env,
            monkeypatch,
            capsys,
        )
        tree_sha = git(work if mode == "commit" else remote, "rev-parse", "HEAD^{tree}", env=env).strip()
        error = proc.stderr.splitlines()[-1] if proc.returncode else ""
        answers.append((proc.returncode, tree_sha, error))
    assert answers[0] == answers[1], answers
    assert answers[0][0] == (2 if tree.refused else 0), answers

"""The bump's post-condition scanner (`llm_platform.bump.postcheck`) on trees given as path -> bytes: what it
accepts as carrying the new digest, what it proves is not a pin, and what fails the bump (with file:line)."""

from __future__ import annotations

import pytest

from llm_platform.bump.postcheck import SIZE_LIMIT, check_tree
from tests.support.bump_fixture import digest_of, repository

pytestmark = pytest.mark.unit

R = repository("qwen-a")
REGISTRY, PATH = R.split("/", 1)
OLD = digest_of("post-old")
NEW = digest_of("post-new")


def failures(files: dict[str, str | bytes]) -> list[str]:
    tree = {path: data.encode() if isinstance(data, str) else data for path, data in files.items()}
    return [str(finding) for finding in check_tree(tree, R, NEW).failures]


@pytest.mark.parametrize(
    "text",
    [
        f"image: {R}@{NEW}\n",
        f"storageUri: oci://{R}:v1@{NEW}\n",
        f"image: '{R}@{NEW}'\n",
        f'image: "{R}@sha256:\\\n  {NEW[7:]}"\n',  # a continuation inside the quotes
        f"image:\n  repository: {R}\n  digest: {NEW}\n",
        f"image: {{registry: {REGISTRY}, repository: {PATH}, digest: '{NEW}'}}\n",
        f"base: &b {{digest: {NEW}}}\nimage:\n  <<: *b\n  repository: {R}\n",
        f"images:\n- name: placeholder\n  newName: {R}\n  digest: {NEW}\n",
        f"args: [--image={R}@{NEW}]\n",  # inside a longer value, but with the new digest
    ],
)
def test_mentions_that_carry_the_new_digest_pass(text: str) -> None:
    assert failures({"gitops/f.yaml": text}) == []


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ({"gitops/f.yaml": f"image: {R}@{OLD}\n"}, "gitops/f.yaml:1"),
        ({"gitops/f.yaml": f"a: 1\nimage: {R.upper()}@{OLD}\n"}, "gitops/f.yaml:2"),  # any letter case
        ({"gitops/f.yaml": f"x:\n  repository: {R}\n  digest: {OLD}\n"}, "gitops/f.yaml:2"),
        ({"gitops/f.yaml": f"x:\n  repository: {R}\n  tag: v1\n"}, "gitops/f.yaml:2"),
        ({"gitops/f.yaml": f"x: {R}:v1\n"}, "gitops/f.yaml:1"),
        (
            {"gitops/f.yaml": f"x:\n  registry: {REGISTRY}\n  repository: {PATH}\n  digest: {OLD}\n"},
            "gitops/f.yaml:3",
        ),
        ({"gitops/f.yaml": f"x:\n  repository: {PATH}\n  digest: {OLD}\n"}, "gitops/f.yaml:2"),  # no registry
        # the repository of two mappings through an anchor: each must carry the new digest
        (
            {
                "gitops/f.yaml": f"a: {{repository: &r {R}, digest: {NEW}}}\nb: {{repository: *r, digest: {OLD}}}\n"
            },
            "gitops/f.yaml:1",
        ),
        # a merged-in repository whose mapping overrides the digest with an old one
        (
            {"gitops/f.yaml": f"a: &a {{repository: {R}, digest: {NEW}}}\nb: {{<<: *a, digest: {OLD}}}\n"},
            "gitops/f.yaml:1",
        ),
        ({"gitops/f.yaml": f"v: |\n  image: {R}@{OLD}\n"}, "gitops/f.yaml:2"),
        ({"gitops/f.json": '{"image": "' + R.replace("/", "\\/") + "@" + OLD + '"}'}, "gitops/f.json:1"),
        ({"gitops/f.json": '{"image": "' + R.replace("/", "\\u002f") + "@" + OLD + '"}'}, "gitops/f.json:1"),
        ({"gitops/f.yaml": f'x: "{R}@sha256:\\\n  {OLD[7:]}"\n'}, "gitops/f.yaml:1"),
        ({"gitops/f.yaml": f"x: [a\nimage: {R}@{NEW}\ny: {R}@{OLD}\n"}, "gitops/f.yaml:3"),  # unparseable
        ({"gitops/run.sh": f"pull {R}@{OLD}\n"}, "gitops/run.sh:1"),
        ({"gitops/values.tpl": f"{{{{/* {R}@{OLD} */}}}}\n"}, "gitops/values.tpl:1"),
        ({"gitops/images.txt": f"{R}\n"}, "gitops/images.txt:1"),
        ({"gitops/f.yaml": f"# caf\xe9\nx: {R}@{OLD}\n".encode("latin-1")}, "gitops/f.yaml:1"),
        ({"gitops/big.yaml": "# " + "x" * SIZE_LIMIT + f"\nx: {R}@{NEW}\n"}, "gitops/big.yaml:1"),
    ],
)
def test_mentions_not_proven_fail_naming_file_and_line(files: dict[str, str | bytes], where: str) -> None:
    found = failures(files)
    assert found and found[0].startswith(f"{where}: "), found
    assert all(": " in f and len(f.split(": ", 1)[1]) > 20 for f in found)  # each says what and what to do


@pytest.mark.parametrize(
    "files",
    [
        {"gitops/README.md": f"The image is {R}@{OLD}.\n\n```yaml\nimage: {R}@{OLD}\n```\n"},
        {"gitops/docs/x.rst": f"{R}@{OLD}\n", "gitops/docs/y.adoc": f"{R}\n"},
        {"gitops/f.yaml": f"# image: {R}@{OLD}\nx: 1  # was {R}@{OLD}\n"},
        {"gitops/f.yaml": f"script: |\n  # crane digest {R}@{OLD}\n  true\n"},
        {"gitops/run.sh": f"#!/bin/sh\n  # {R}@{OLD}\n"},
        {"gitops/main.jsonnet": f"// {R}@{OLD}\n{{}}\n"},
        {
            "gitops/f.yaml": f"a: {R}-awq@{OLD}\nb: {R}/sub@{OLD}\nc: mirror.example/{R}@{OLD}\nd: {R}.old@{OLD}\n"
        },
        {"gitops/f.yaml": f"e: docker.io/{PATH}@{OLD}\nf: x{R}@{OLD}\n"},
        {"gitops/k.yaml": f"images:\n- name: {R}\n  newName: {R}-mirror\n  digest: {OLD}\n"},
        {"gitops/v.yaml": f"image:\n  registry: docker.io\n  repository: {PATH}\n  digest: {OLD}\n"},
        {"gitops/blob.bin": b"\x00\x01" + f"{R}@{OLD}".encode()},
        {"gitops/big.yaml": "# " + "x" * SIZE_LIMIT + "\n"},
    ],
)
def test_mentions_provably_not_pins_are_left_alone(files: dict[str, str | bytes]) -> None:
    assert failures(files) == []


def test_ignored_mentions_say_why() -> None:
    tree = {
        "gitops/README.md": f"{R}@{OLD}\n".encode(),
        "gitops/f.yaml": f"# {R}@{OLD}\nimages:\n- name: {R}\n  newName: other\n  digest: {OLD}\n".encode(),
    }
    report = check_tree(tree, R, NEW)
    assert report.failures == []
    assert sorted((f.path, f.line, f.message) for f in report.ignored) == [
        ("gitops/README.md", 1, "documentation (Markdown, reStructuredText, AsciiDoc)"),
        ("gitops/f.yaml", 1, "in a YAML comment"),
        ("gitops/f.yaml", 3, "a kustomize images entry renamed to other"),
    ]

"""The error contract of the command line, over a table of bad inputs per command, run as a user runs
them (the installed `llm-platform`, a fresh process each): the exit code (2 the user's, 1 a tool or a
service), exactly one `llm-platform: error: <where>: <what>` line, the file or flag named, no traceback,
nothing on stdout, and a huge value never echoed in full."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.images import BaseLayout
from tests.support.publish_fixtures import generated_model
from tests.support.registry import free_port

_CLI = str(Path(sys.executable).with_name("llm-platform"))
PREFIX = "llm-platform: error: "
HUGE = "x" * 100_000  # one argument may hold 128 KiB


@dataclass
class Case:
    """A bad invocation: `argv` (with {tmp}, {spec}, {model}, {base} filled in), files to create first
    (relative path -> text, or None for a directory), what stdin holds, the exit code and what the one
    error line must name."""

    argv: list[str]
    code: int
    names: list[str]
    files: dict[str, str | None] = field(default_factory=dict)
    stdin: str = ""
    env: dict[str, str] = field(default_factory=dict)


GOOD_SPEC = """\
huggingface:
  repo: example/tiny
  revision: 0123456789abcdef0123456789abcdef01234567
image:
  repository: 127.0.0.1:5000/modelcars/tiny
  base: docker.io/library/busybox:1.37.0@sha256:bdf57e528e45e4433820e045b29b4597825a1c9e38353532d90a01445013f82e
"""
BUILD = ["modelcar", "build", "{spec}", "--source-dir", "{model}", "--base", "{base}"]
PUBLISH = ["modelcar", "publish", "{spec}", "--source-dir", "{model}", "--base", "{base}"]
REF = "127.0.0.1:5000/modelcars/tiny@sha256:" + "a" * 64

CASES: dict[str, Case] = {
    # -- usage ----------------------------------------------------------------------------------------------
    "unknown command": Case(["frobnicate"], 2, ["No such command 'frobnicate'"]),
    "missing argument": Case(["modelcar", "build", "--output", "{tmp}/out"], 2, ["modelcar build", "spec"]),
    "bad choice": Case(["lint", "--format", "banana"], 2, ["--format", "banana"]),
    "bad number": Case([*PUBLISH, "--to", "127.0.0.1:5000/a/b", "--concurrency", "0"], 2, ["--concurrency"]),
    # -- modelcar build ------------------------------------------------------------------------------------
    "spec missing": Case(["modelcar", "build", "{tmp}/nope.yaml", "-o", "{tmp}/out"], 2, ["nope.yaml"]),
    "spec is a directory": Case(
        ["modelcar", "build", "{tmp}/d.yaml", "-o", "{tmp}/out"], 2, ["d.yaml"], files={"d.yaml": None}
    ),
    "spec not YAML": Case(
        ["modelcar", "build", "{tmp}/bad.yaml", "-o", "{tmp}/out"],
        2,
        ["bad.yaml:3", "invalid YAML"],
        files={"bad.yaml": "huggingface:\n  repo: [unclosed\n"},
    ),
    "spec unknown field": Case(
        ["modelcar", "build", "{tmp}/f.yaml", "-o", "{tmp}/out"],
        2,
        ["f.yaml", "colour"],
        files={"f.yaml": GOOD_SPEC + "colour: blue\n"},
    ),
    "source dir missing": Case(
        ["modelcar", "build", "{spec}", "--source-dir", "{tmp}/none", "--base", "{base}", "-o", "{tmp}/out"],
        2,
        ["--source-dir", "none"],
    ),
    "output is a file": Case([*BUILD, "-o", "{tmp}/file"], 2, ["--output", "file"], files={"file": "x"}),
    "output parent is a file": Case(
        [*BUILD, "-o", "{tmp}/file/out"], 2, ["--output", "file/out"], files={"file": "x"}
    ),
    "output not writable": Case(
        [*BUILD, "-o", "/sys/llm-platform-out"], 2, ["--output", "/sys/llm-platform-out"]
    ),
    "base not pinned": Case(
        [
            "modelcar",
            "build",
            "{spec}",
            "--source-dir",
            "{model}",
            "--base",
            "docker.io/library/busybox:latest",
            "-o",
            "{tmp}/out",
        ],
        2,
        ["--base"],
    ),
    "huge base": Case(
        ["modelcar", "build", "{spec}", "--source-dir", "{model}", "--base", HUGE, "-o", "{tmp}/out"],
        2,
        ["--base"],
    ),
    # -- modelcar publish ----------------------------------------------------------------------------------
    "target with a digest": Case([*PUBLISH, "--to", REF], 2, ["--to", "not a digest"]),
    "target not a reference": Case([*PUBLISH, "--to", "Not A/Ref"], 2, ["--to"]),
    "huge target": Case([*PUBLISH, "--to", "127.0.0.1:5000/" + HUGE], 2, ["--to"]),
    "empty password on stdin": Case(
        [*PUBLISH, "--to", "127.0.0.1:5000/a/b", "--username", "u", "--password-stdin"],
        2,
        ["--password-stdin"],
    ),
    "user without password": Case(
        [*PUBLISH, "--to", "127.0.0.1:5000/a/b", "--username", "u"], 2, ["--username u", "--password-stdin"]
    ),
    "password without user": Case(
        [*PUBLISH, "--to", "127.0.0.1:5000/a/b", "--password-stdin"],
        2,
        ["--password-stdin", "--username"],
        stdin="secret\n",
    ),
    "registry unreachable": Case(
        [*PUBLISH, "--to", "127.0.0.1:{port}/a/b", "--retries", "0"], 1, ["127.0.0.1:{port}", "unreachable"]
    ),
    # -- modelcar changed ----------------------------------------------------------------------------------
    "modelcars dir missing": Case(["modelcar", "changed", "--modelcars", "{tmp}/none"], 2, ["none"]),
    # -- lint ----------------------------------------------------------------------------------------------
    "lint path missing": Case(["lint", "{tmp}/none"], 2, ["none"]),
    "lint config not YAML": Case(
        ["lint", "{tmp}/tree", "--config", "{tmp}/lint.yaml"],
        2,
        ["lint.yaml"],
        files={"tree": None, "lint.yaml": "ignore: [\n"},
    ),
    "lint config unknown field": Case(
        ["lint", "{tmp}/tree", "--config", "{tmp}/lint.yaml"],
        2,
        ["lint.yaml", "ignroe"],
        files={"tree": None, "lint.yaml": "ignroe: []\n"},
    ),
    "lint kubernetes version": Case(
        ["lint", "{tmp}/tree", "--kubernetes-version", "banana"],
        2,
        ["--kubernetes-version"],
        files={"tree": None},
    ),
    # -- bump ----------------------------------------------------------------------------------------------
    "bump ref without digest": Case(
        ["bump", "--model", "tiny", "--ref", "127.0.0.1:5000/a/b:v1", "--dry-run"],
        2,
        ["--ref", "not digest-pinned"],
    ),
    "bump ref with bad digest": Case(
        ["bump", "--model", "tiny", "--ref", "127.0.0.1:5000/a/b@sha256:AB", "--dry-run"], 2, ["--ref"]
    ),
    "bump huge ref": Case(
        ["bump", "--model", "tiny", "--ref", HUGE + "@sha256:" + "a" * 64, "--dry-run"], 2, ["--ref"]
    ),
    # -- crds sync -----------------------------------------------------------------------------------------
    "crds lock missing": Case(["crds", "sync", "--lock", "{tmp}/none.yaml"], 2, ["none.yaml"]),
    "crds lock not YAML": Case(
        ["crds", "sync", "--lock", "{tmp}/lock.yaml"],
        2,
        ["lock.yaml:2", "not valid YAML"],
        files={"lock.yaml": "crds: [\n"},
    ),
    "crds mirror not a directory": Case(
        [
            "crds",
            "sync",
            "--lock",
            "{repo}/gitops/crds.lock.yaml",
            "--cache",
            "{tmp}/c",
            "--mirror",
            "{tmp}/m",
        ],
        2,
        ["mirror", "not a directory"],
        files={"m": "x"},
    ),
    # -- tofu ----------------------------------------------------------------------------------------------
    "tofu root missing": Case(["tofu", "output", "{tmp}/none"], 2, ["none"]),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, busybox_layout: BaseLayout) -> dict[str, str]:
    root = tmp_path_factory.mktemp("contract-inputs")
    model = generated_model(root, "tiny", {"w.safetensors": 4096, "config.json": 20})
    return {"spec": str(model.spec), "model": str(model.source), "base": busybox_layout.ref}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_ends_in_one_line(
    name: str, tmp_path: Path, inputs: dict[str, str], repo_root: Path
) -> None:
    case = CASES[name]
    for rel, text in case.files.items():
        target = tmp_path / rel
        if text is None:
            target.mkdir(parents=True)
        else:
            target.write_text(text)
    values = {**inputs, "tmp": str(tmp_path), "port": str(free_port()), "repo": str(repo_root)}
    argv = [arg.format(**values) if "{" in arg and len(arg) < 1000 else arg for arg in case.argv]
    names = [n.format(**values) for n in case.names]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_PLATFORM_REGISTRY_", "HF_"))}
    env.update({"HF_HUB_OFFLINE": "1", "HOME": str(tmp_path), **case.env})
    proc = subprocess.run(
        [_CLI, *argv], input=case.stdin, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith(PREFIX)]
    assert (proc.returncode, proc.stdout) == (case.code, ""), proc.stderr[-2000:]
    assert len(errors) == 1 and proc.stderr.rstrip("\n").endswith(errors[0]), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "internal error" not in errors[0]
    for expected in names:
        assert expected in errors[0], errors[0]
    assert len(errors[0]) < 1200  # a huge value is cut, never echoed in full
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_verbose_adds_the_traceback_and_keeps_the_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [_CLI, "-v", "modelcar", "build", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    assert (
        proc.stderr.rstrip("\n").splitlines()[-1] == f"{PREFIX}{tmp_path / 'nope.yaml'}: spec file not found"
    )


def test_one_line_joins_lines_and_cuts_the_middle() -> None:
    from llm_platform.errors import one_line

    assert one_line("spec.yaml:1: a\n  spec.yaml:2: b\t c\n") == "spec.yaml:1: a; spec.yaml:2: b c"
    cut = one_line("where: " + "v" * 5000 + " do this", limit=200)
    assert cut.startswith("where: vvv") and cut.endswith("vvv do this") and len(cut) <= 220
    assert "characters cut" in cut

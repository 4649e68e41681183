"""The hostile inputs of tests/test_bounded_parsing.py through the installed command, as CI runs it on a
pull request: each run ends within seconds, with findings (lint) or one error line (exit 2), and the
process's peak memory (ru_maxrss of the child, from wait4) stays under a bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_bounded_parsing import DEEP_BLOCK, DEEP_FLOW, GOOD_SPEC, billion_laughs

_CLI = str(Path(sys.executable).with_name("llm-platform"))
PREFIX = "llm-platform: error: "
SECONDS = 10.0
PEAK_MB = 300


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


# The CLI is started by this small wrapper, not by pytest: a child's ru_maxrss also counts the memory of
# the process it was forked from (up to its exec), and pytest is large. wait4 gives the child's own
# peak, its waited-for children (git, kubectl) included.
_WRAPPER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss}, out)
"""


def run_measured(argv: list[str], cwd: Path, timeout: float = 60) -> Run:
    """Run the CLI; its wall time and its own peak RSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_PLATFORM_REGISTRY_", "HF_"))}
    env.update({"HF_HUB_OFFLINE": "1", "HOME": str(cwd)})
    result = cwd / ".measured.json"
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _WRAPPER, str(result), _CLI, *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{argv} did not finish within {timeout} s: {exc}")
    seconds = time.perf_counter() - start
    measured = json.loads(result.read_text())
    return Run(measured["code"], proc.stdout, proc.stderr, seconds, measured["maxrss_kb"] / 1024)


def _tree(tmp_path: Path) -> Path:
    gitops = tmp_path / "gitops"
    gitops.mkdir()
    (gitops / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n  namespace: a\n"
    )
    return gitops


def _alias_bomb(gitops: Path) -> None:
    (gitops / "lol.yaml").write_text(billion_laughs())


def _deep(gitops: Path) -> None:
    (gitops / "deep.yaml").write_text(DEEP_FLOW)


def _deep_block(gitops: Path) -> None:
    (gitops / "deep.yaml").write_text(DEEP_BLOCK)


def _dense(gitops: Path) -> None:  # 15 MiB, under the byte cap: refused on its node count
    (gitops / "dense.yaml").write_text("[" + "0," * (15 * 1024 * 1024 // 2) + "0]")


def _fifo(gitops: Path) -> None:
    os.mkfifo(gitops / "x.yaml")


def _symlink_loop(gitops: Path) -> None:
    (gitops / "a.yaml").symlink_to("b.yaml")
    (gitops / "b.yaml").symlink_to("a.yaml")


def _cycle(gitops: Path) -> None:
    for name, other in (("a", "b"), ("b", "a")):
        (gitops / name).mkdir()
        (gitops / name / "kustomization.yaml").write_text(f"resources:\n  - ../{other}\n")


LINT_CASES = {
    "alias-bomb": (_alias_bomb, ["gitops/lol.yaml:6:4: error yaml-limits more than 500,000 YAML nodes"]),
    "10k-deep": (_deep, ["gitops/deep.yaml:1:1001: error yaml-limits nested deeper than 200 levels"]),
    "300-deep-block": (_deep_block, ["gitops/deep.yaml:201:201: error yaml-limits nested deeper than 200"]),
    "dense-15MiB": (_dense, ["gitops/dense.yaml:1:1: error yaml-limits more than 500,000 YAML nodes"]),
    "fifo": (_fifo, ["gitops/x.yaml:1:1: error yaml-not-regular-file a FIFO, not a regular file"]),
    "symlink-loop": (
        _symlink_loop,
        [
            "gitops/a.yaml:1:1: error yaml-symlink-loop symlink loop",
            "gitops/b.yaml:1:1: error yaml-symlink-loop",
        ],
    ),
    "kustomization-cycle": (
        _cycle,
        [
            "gitops/a/kustomization.yaml:2:5: error render-kustomize-cycle kustomization cycle: gitops/a "
            "includes gitops/b, which includes gitops/a again"
        ],
    ),
}


@pytest.mark.parametrize("case", list(LINT_CASES))
def test_lint_ends_quickly_with_findings_and_bounded_memory(case: str, tmp_path: Path) -> None:
    make, expected = LINT_CASES[case]
    make(_tree(tmp_path))
    run = run_measured(["lint", "gitops"], tmp_path)
    print(f"\nlint {case}: {run.seconds:.2f} s, peak {run.peak_mb:.0f} MB")
    assert run.code == 1, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == len(expected), run.stdout
    for line, want in zip(sorted(lines), expected, strict=True):
        assert line.startswith(want), line
    assert "Traceback" not in run.stderr
    assert run.seconds < SECONDS and run.peak_mb < PEAK_MB


SPEC_CASES = {
    "alias-bomb": (billion_laughs(), "tiny.yaml:5: more than 100,000 YAML nodes"),
    "10k-deep": ("serving: " + DEEP_FLOW, "tiny.yaml:1: nested deeper than 100 levels"),
    "control-character": (GOOD_SPEC.replace("example/tiny", "ex\x1bample/tiny"), "tiny.yaml:2: invalid YAML"),
    "huge": (GOOD_SPEC + "# " + "x" * 2_000_000 + "\n", "tiny.yaml: 2,000,"),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_a_hostile_spec_ends_in_one_line_with_bounded_memory(case: str, tmp_path: Path) -> None:
    text, expected = SPEC_CASES[case]
    (tmp_path / "tiny.yaml").write_text(text)
    run = run_measured(["modelcar", "build", "tiny.yaml", "-o", "out"], tmp_path)
    print(f"\nspec {case}: {run.seconds:.2f} s, peak {run.peak_mb:.0f} MB")
    errors = [line for line in run.stderr.splitlines() if line.startswith(PREFIX)]
    assert (run.code, run.stdout) == (2, ""), run.stderr[-2000:]
    assert len(errors) == 1 and expected in errors[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr and len(errors[0]) < 500
    assert run.seconds < SECONDS and run.peak_mb < PEAK_MB


def test_a_malformed_lint_config_ends_in_one_line(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "lint.yaml").write_text("ignore:\n  - path: a\n    rules: [x\n")
    run = run_measured(["lint", "gitops", "--config", "lint.yaml"], tmp_path)
    errors = [line for line in run.stderr.splitlines() if line.startswith(PREFIX)]
    assert run.code == 2 and len(errors) == 1, run.stderr
    assert "lint.yaml:4: not valid YAML: while parsing a flow sequence (line 3): not closed" in errors[0]


def test_baseline_memory_of_a_clean_lint(tmp_path: Path) -> None:
    """What the bound is relative to: the command on a tree with nothing hostile in it."""
    _tree(tmp_path)
    run = run_measured(["lint", "gitops"], tmp_path)
    print(f"\nlint clean tree: {run.seconds:.2f} s, peak {run.peak_mb:.0f} MB")
    assert run.code == 0, run.stdout + run.stderr[-2000:]

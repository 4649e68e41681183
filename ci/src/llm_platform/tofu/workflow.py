"""The step itself: init, plan to a file, check it, apply exactly that file, read typed outputs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llm_platform.errors import DestroyRefusedError, InputError, ToolError
from llm_platform.logs import get_logger
from llm_platform.tofu.binary import TofuBinary, find_binary
from llm_platform.tofu.diagnostics import json_messages, tool_error
from llm_platform.tofu.options import (
    TofuOptions,
    backend_config_args,
    check_root,
    lock_timeout_arg,
    plugin_dir_args,
    var_file_args,
)
from llm_platform.tofu.plan_summary import PlanSummary, ResourceChange, summarize
from llm_platform.tofu.platform_outputs import OutputsModel, PlatformOutputs, parse_outputs
from llm_platform.tofu.protection import ProtectionPolicy, address_matches, load_policy, refused_changes
from llm_platform.tofu.runner import Runner

log = get_logger("tofu")

# `-detailed-exitcode`: 0 = no changes, 2 = changes, anything else = failure.
_NO_CHANGES, _CHANGES = 0, 2


class ChangeCounts(BaseModel):
    add: int = 0
    change: int = 0
    remove: int = 0


class PlanResult(BaseModel):
    root: str
    binary: TofuBinary
    changes: bool = Field(description="False when the plan is a no-op")
    summary: PlanSummary
    protected_destroys: list[ResourceChange] = Field(
        default_factory=list, description="Destroys/replaces of protected resources: apply refuses these"
    )
    plan_file: str | None = Field(default=None, description="Saved plan, when one was asked for")


class ApplyResult(BaseModel):
    root: str
    applied: bool
    message: str
    plan: PlanResult
    applied_changes: ChangeCounts = Field(default_factory=ChangeCounts)


def _runner(root: Path, options: TofuOptions, env: Mapping[str, str] | None) -> Runner:
    return Runner(find_binary(options.binary), root, env)


def _init(runner: Runner, options: TofuOptions) -> None:
    args = [
        "init",
        "-input=false",
        "-no-color",
        lock_timeout_arg(options.lock_timeout),
        *backend_config_args(options.backend_config, runner.workdir),
        *plugin_dir_args(options.plugin_dir),
    ]
    run = runner.run(args)
    if run.returncode != 0:
        raise tool_error(runner.binary.product, "init", str(runner.workdir), run)
    log.debug("%s init: ok in %s", runner.binary.product, runner.workdir)


def init(root: Path, options: TofuOptions | None = None, env: Mapping[str, str] | None = None) -> TofuBinary:
    """`init -input=false` with the backend config and plugin dir; returns the binary used."""
    options = options or TofuOptions()
    runner = _runner(check_root(root), options, env)
    _init(runner, options)
    return runner.binary


def _show(runner: Runner, plan_file: Path) -> dict[str, Any]:
    run = runner.run(["show", "-json", "-no-color", str(plan_file)])
    if run.returncode != 0:
        raise tool_error(runner.binary.product, "show", str(runner.workdir), run)
    try:
        data = json.loads(run.stdout)
    except ValueError as exc:
        raise ToolError(f"{runner.binary.product} show -json {plan_file}: output is not JSON") from exc
    if not isinstance(data, dict):
        raise ToolError(f"{runner.binary.product} show -json {plan_file}: unexpected output")
    return data


def _plan_into(runner: Runner, options: TofuOptions, plan_file: Path, policy: ProtectionPolicy) -> PlanResult:
    args = [
        "plan",
        "-input=false",
        "-json",
        "-detailed-exitcode",
        lock_timeout_arg(options.lock_timeout),
        f"-out={plan_file}",
        *var_file_args(options.var_files),
    ]
    run = runner.run(args)
    if run.returncode not in (_NO_CHANGES, _CHANGES):
        raise tool_error(runner.binary.product, "plan", str(runner.workdir), run)
    # Plans can hold sensitive variable values: keep them private to this user.
    os.chmod(plan_file, 0o600)
    return _result(runner, plan_file, changes=run.returncode == _CHANGES, policy=policy)


def _result(runner: Runner, plan_file: Path, changes: bool, policy: ProtectionPolicy) -> PlanResult:
    summary = summarize(_show(runner, plan_file))
    protected = refused_changes(summary, policy, allow_destroy=())
    log.info("%s: %s", runner.workdir.name, summary.line() if changes else "No changes.")
    for change in summary.resources:
        marker = "  (PROTECTED)" if change in protected else ""
        log.info("  %-7s %s%s", change.action, change.address, marker)
    return PlanResult(
        root=str(runner.workdir),
        binary=runner.binary,
        changes=changes,
        summary=summary,
        protected_destroys=protected,
    )


def plan(
    root: Path,
    options: TofuOptions | None = None,
    out: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> PlanResult:
    """Init, then plan (to `out`, or to a private temporary file) and summarize what would change."""
    options = options or TofuOptions()
    root = check_root(root)
    policy = load_policy(root)
    runner = _runner(root, options, env)
    _init(runner, options)
    if out is not None:
        out = out.resolve()
        result = _plan_into(runner, options, out, policy)
        return result.model_copy(update={"plan_file": str(out)})
    with tempfile.TemporaryDirectory(prefix="llm-platform-plan-") as tmp:
        return _plan_into(runner, options, Path(tmp) / "plan.tfplan", policy)


def apply(
    root: Path,
    options: TofuOptions | None = None,
    allow_destroy: Iterable[str] = (),
    plan_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ApplyResult:
    """Apply exactly one saved plan: `plan_file`, or a fresh one made here. Refuses protected destroys."""
    options = options or TofuOptions()
    allowed = list(allow_destroy)
    root = check_root(root)
    policy = load_policy(root)
    if plan_file is not None and not plan_file.is_file():
        raise InputError(f"--plan-file {plan_file}: no such file")
    if plan_file is not None and options.var_files:
        raise InputError(
            "--var-file cannot be combined with --plan-file: the saved plan already holds its variables"
        )
    runner = _runner(root, options, env)
    _init(runner, options)
    if plan_file is not None:
        plan_file = plan_file.resolve()
        raw = _show(runner, plan_file)
        changes = bool(raw.get("applyable", True)) and not summarize(raw).empty
        result = _result(runner, plan_file, changes=changes, policy=policy)
        return _apply_checked(
            runner,
            options,
            result.model_copy(update={"plan_file": str(plan_file)}),
            plan_file,
            allowed,
            policy,
        )
    with tempfile.TemporaryDirectory(prefix="llm-platform-plan-") as tmp:
        fresh = Path(tmp) / "plan.tfplan"
        result = _plan_into(runner, options, fresh, policy)
        return _apply_checked(runner, options, result, fresh, allowed, policy)


def _apply_checked(
    runner: Runner,
    options: TofuOptions,
    result: PlanResult,
    plan_file: Path,
    allowed: list[str],
    policy: ProtectionPolicy,
) -> ApplyResult:
    root = str(runner.workdir)
    if not result.changes:
        message = "No changes: the infrastructure matches the configuration; nothing was applied."
        log.info("%s", message)
        return ApplyResult(root=root, applied=False, message=message, plan=result)
    refused = refused_changes(result.summary, policy, allowed)
    if refused:
        listed = "\n  ".join(
            f"{c.address} ({c.action}{', ' + c.reason if c.reason else ''})" for c in refused
        )
        raise DestroyRefusedError(
            f"refusing to apply in {root}: the plan would destroy protected resources:\n  {listed}\n"
            "Nothing was applied. If this is intended, name each one with --allow-destroy ADDRESS."
        )
    for change in result.summary.resources:
        if change.destroys and policy.protects(change):
            log.warning("allowed by --allow-destroy: %s %s", change.action, change.address)
    for pattern in allowed:
        if not any(c.destroys and address_matches(pattern, c.address) for c in result.summary.resources):
            log.warning("--allow-destroy %s: the plan destroys nothing by that address", pattern)
    run = runner.stream(
        ["apply", "-input=false", "-json", lock_timeout_arg(options.lock_timeout), str(plan_file)],
        _log_progress,
    )
    messages = json_messages(run.stdout)
    counts = ChangeCounts()
    for entry in messages:
        if entry.get("type") == "change_summary" and isinstance(entry.get("changes"), dict):
            counts = ChangeCounts.model_validate(entry["changes"])
    if run.returncode != 0:
        error = tool_error(runner.binary.product, "apply", root, run)
        raise ToolError(
            f"{error.message}\n"
            f"Some changes may have been applied before the failure ({counts.add} added, {counts.change} changed, "
            f"{counts.remove} destroyed per the tool); run plan again to see what remains."
        )
    message = f"Applied: {counts.add} added, {counts.change} changed, {counts.remove} destroyed."
    log.info("%s", message)
    return ApplyResult(root=root, applied=True, message=message, plan=result, applied_changes=counts)


# JSON UI message types worth showing while an apply runs (a GKE cluster takes many minutes).
_PROGRESS_TYPES = {"apply_start", "apply_progress", "apply_complete", "apply_errored"}


def _log_progress(line: str) -> None:
    for message in json_messages(line):
        if message.get("type") in _PROGRESS_TYPES and message.get("@message"):
            log.info("  %s", message["@message"])


def _output_json(root: Path, options: TofuOptions | None, env: Mapping[str, str] | None) -> dict[str, Any]:
    options = options or TofuOptions()
    runner = _runner(check_root(root), options, env)
    _init(runner, options)
    run = runner.run(["output", "-json", "-no-color"])
    if run.returncode != 0:
        raise tool_error(runner.binary.product, "output", str(runner.workdir), run)
    try:
        raw = json.loads(run.stdout or "{}")
    except ValueError as exc:
        raise ToolError(f"{runner.binary.product} output -json in {root}: output is not JSON") from exc
    return raw if isinstance(raw, dict) else {}


def read_outputs(
    root: Path,
    model: type[OutputsModel],
    options: TofuOptions | None = None,
    env: Mapping[str, str] | None = None,
) -> OutputsModel:
    """`output -json` of the root's state, validated against `model` (missing/mistyped outputs are named)."""
    return parse_outputs(_output_json(root, options, env), model, str(root))


def outputs(
    root: Path, options: TofuOptions | None = None, env: Mapping[str, str] | None = None
) -> PlatformOutputs:
    """The platform contract of an `infra/envs/<env>` root."""
    return read_outputs(root, PlatformOutputs, options, env)


SENSITIVE_PLACEHOLDER = "(sensitive)"


def raw_outputs(
    root: Path,
    options: TofuOptions | None = None,
    env: Mapping[str, str] | None = None,
    reveal_sensitive: bool = False,
) -> dict[str, Any]:
    """All outputs as name -> value, for roots without a contract (e.g. infra/bootstrap)."""
    values: dict[str, Any] = {}
    for name, entry in _output_json(root, options, env).items():
        if not isinstance(entry, dict):
            continue
        hidden = entry.get("sensitive") and not reveal_sensitive
        values[name] = SENSITIVE_PLACEHOLDER if hidden else entry.get("value")
    return values

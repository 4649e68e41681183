"""The `tofu` step: provision the substrate with OpenTofu (or terraform) safely and repeatably.

Public API (used by the CLI and the Dagger module): `plan`, `apply`, `outputs`, `read_outputs`,
`raw_outputs`, `init`.
"""

from __future__ import annotations

from llm_platform.errors import DestroyRefusedError
from llm_platform.tofu.binary import TofuBinary, find_binary
from llm_platform.tofu.options import TofuOptions
from llm_platform.tofu.plan_summary import PlanSummary, ResourceChange
from llm_platform.tofu.platform_outputs import PlatformOutputs, ServiceAccounts, parse_outputs
from llm_platform.tofu.protection import DEFAULT_PROTECTED_TYPES, POLICY_FILE, ProtectionPolicy
from llm_platform.tofu.workflow import (
    ApplyResult,
    ChangeCounts,
    PlanResult,
    apply,
    init,
    outputs,
    plan,
    raw_outputs,
    read_outputs,
)

__all__ = [
    "DEFAULT_PROTECTED_TYPES",
    "POLICY_FILE",
    "ApplyResult",
    "ChangeCounts",
    "DestroyRefusedError",
    "PlanResult",
    "PlanSummary",
    "PlatformOutputs",
    "ProtectionPolicy",
    "ResourceChange",
    "ServiceAccounts",
    "TofuBinary",
    "TofuOptions",
    "apply",
    "find_binary",
    "init",
    "outputs",
    "parse_outputs",
    "plan",
    "raw_outputs",
    "read_outputs",
]

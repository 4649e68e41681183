"""`llm-platform lint`: catch every mistake in the GitOps tree before Argo CD does, offline.

Public API: `run_lint(paths, *, crd_dirs=(), kubernetes_version=None, config=None) -> LintReport`.
"""

from __future__ import annotations

from llm_platform.lint.config import LintConfig, PathIgnore, load_config
from llm_platform.lint.engine import DEFAULT_KUBERNETES_VERSION, run_lint
from llm_platform.lint.model import Coverage, Finding, LintReport, Severity
from llm_platform.lint.rules import IGNORE_ANNOTATION, RULES, Rule

__all__ = [
    "DEFAULT_KUBERNETES_VERSION",
    "IGNORE_ANNOTATION",
    "RULES",
    "Coverage",
    "Finding",
    "LintConfig",
    "LintReport",
    "PathIgnore",
    "Rule",
    "Severity",
    "load_config",
    "run_lint",
]

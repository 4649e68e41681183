"""CRD `x-kubernetes-validations` rules evaluated with cel-python; each rule text is compiled once."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import celpy
from celpy.evaluation import CELEvalError


@dataclass(frozen=True)
class CelOutcome:
    passed: bool | None  # None: could not evaluate here (reason says why); never reported as a finding
    reason: str = ""


class CelRules:
    """Compiled-rule cache shared by every lint run in the process (compiling is the slow part)."""

    def __init__(self) -> None:
        # The interpreter, not celpy.CompiledRunner: the 0.5.0 transpiler mis-evaluates has() with
        # short-circuits (observed on Gateway API rules), so speed comes from memoising results instead.
        self._env_: celpy.Environment | None = None  # built on first use: building the parser is slow
        self._programs: dict[str, Any] = {}
        self._broken: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def _env(self) -> celpy.Environment:
        if self._env_ is None:
            self._env_ = celpy.Environment()
        return self._env_

    def _program(self, rule_text: str) -> Any:
        with self._lock:
            if rule_text in self._broken:
                return None
            prog = self._programs.get(rule_text)
            if prog is None:
                try:
                    prog = self._env.program(self._env.compile(rule_text))
                except Exception as exc:  # noqa: BLE001  (cel-python raises many parser exception types)
                    self._broken[rule_text] = f"does not compile in cel-python: {exc}".splitlines()[0]
                    return None
                self._programs[rule_text] = prog
            return prog

    def evaluate(self, rule_text: str, value: Any) -> CelOutcome:
        if "oldSelf" in rule_text:
            return CelOutcome(None, "transition rule (oldSelf): only checked on update")
        prog = self._program(rule_text)
        if prog is None:
            return CelOutcome(None, self._broken[rule_text])
        try:
            result = prog.evaluate({"self": celpy.json_to_cel(value)})
        except CELEvalError as exc:
            return CelOutcome(None, f"evaluation error in cel-python: {exc.args[0] if exc.args else exc}")
        except Exception as exc:  # noqa: BLE001  (e.g. a Kubernetes CEL library function cel-python lacks)
            return CelOutcome(None, f"evaluation error in cel-python: {type(exc).__name__}: {exc}")
        if isinstance(result, CELEvalError):
            return CelOutcome(
                None, f"evaluation error in cel-python: {result.args[0] if result.args else result}"
            )
        if isinstance(result, bool) or type(result).__name__ == "BoolType":
            return CelOutcome(bool(result))
        return CelOutcome(None, f"rule did not return a bool ({type(result).__name__})")

    def evaluate_expression(self, expr: str, value: Any) -> str | None:
        """A messageExpression; None when it cannot be evaluated."""
        prog = self._program(expr)
        if prog is None:
            return None
        try:
            result = prog.evaluate({"self": celpy.json_to_cel(value)})
        except Exception:  # noqa: BLE001  (a message is best effort; the rule message is the fallback)
            return None
        return None if isinstance(result, CELEvalError) else str(result)


CEL = CelRules()

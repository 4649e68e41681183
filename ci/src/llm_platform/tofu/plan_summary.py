"""What a saved plan will do, read from `show -json <planfile>`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from llm_platform.errors import ToolError

Action = Literal["create", "update", "delete", "replace", "read", "forget", "no-op"]


class ResourceChange(BaseModel):
    """One resource instance the plan touches."""

    address: str
    type: str
    action: Action
    reason: str | None = Field(default=None, description="Why, e.g. replace_because_cannot_update")

    @property
    def destroys(self) -> bool:
        """True when the current object is deleted (a plain delete or the delete half of a replace)."""
        return self.action in ("delete", "replace")


class PlanSummary(BaseModel):
    """Counts per action plus the changing resources (no-op and read-only entries are left out)."""

    add: int = 0
    change: int = 0
    destroy: int = 0
    replace: int = 0
    forget: int = 0
    imports: int = 0
    output_changes: list[str] = Field(default_factory=list)
    resources: list[ResourceChange] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.add or self.change or self.destroy or self.replace or self.forget or self.output_changes
        )

    def line(self) -> str:
        parts = f"{self.add} to add, {self.change} to change, {self.replace} to replace, {self.destroy} to destroy"
        extra = f", {self.forget} to forget" if self.forget else ""
        outputs = f"; {len(self.output_changes)} output(s) change" if self.output_changes else ""
        return f"Plan: {parts}{extra}{outputs}"


def _action(actions: list[str]) -> Action:
    if sorted(actions) == ["create", "delete"]:
        return "replace"
    if len(actions) == 1 and actions[0] in ("create", "update", "delete", "read", "forget", "no-op"):
        return actions[0]  # type: ignore[return-value]
    raise ToolError(f"plan has an action list this step does not know: {actions!r}")


def summarize(plan_json: dict[str, Any]) -> PlanSummary:
    summary = PlanSummary()
    for entry in plan_json.get("resource_changes") or []:
        change = entry.get("change") or {}
        action = _action(list(change.get("actions") or ["no-op"]))
        if change.get("importing"):
            summary.imports += 1
        if action in ("no-op", "read"):
            continue
        summary.resources.append(
            ResourceChange(
                address=entry["address"], type=entry["type"], action=action, reason=entry.get("action_reason")
            )
        )
        if action == "create":
            summary.add += 1
        elif action == "update":
            summary.change += 1
        elif action == "delete":
            summary.destroy += 1
        elif action == "replace":
            summary.replace += 1
        elif action == "forget":
            summary.forget += 1
    for name, output in sorted((plan_json.get("output_changes") or {}).items()):
        if (output.get("actions") or ["no-op"]) != ["no-op"]:
            summary.output_changes.append(name)
    return summary

"""Turning a failed run into one clear error that carries the tool's own diagnostic."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from llm_platform.errors import ToolError
from llm_platform.tofu.runner import ToolRun

# Box-drawing frames around text diagnostics (`╷ │ ╵`) carry no information.
_FRAME = re.compile(r"^[\u2577\u2502\u2575]\s?", re.MULTILINE)
_TEXT_ERROR = re.compile(r"^Error: ", re.MULTILINE)


class DiagnosticRange(BaseModel):
    filename: str
    start: dict[str, int]


class Diagnostic(BaseModel):
    """One diagnostic of the machine-readable (`-json`) UI."""

    severity: str
    summary: str
    detail: str = ""
    range: DiagnosticRange | None = None

    def render(self) -> str:
        where = f" ({self.range.filename}:{self.range.start.get('line', '?')})" if self.range else ""
        detail = f": {self.detail.strip()}" if self.detail.strip() else ""
        return f"{self.summary}{where}{detail}"


def json_messages(stdout: str) -> list[dict[str, Any]]:
    """The JSON UI stream, one object a line; other lines (e.g. provider chatter) are ignored."""
    messages: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            messages.append(message)
    return messages


def json_diagnostics(messages: list[dict[str, Any]], severity: str = "error") -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for message in messages:
        if message.get("type") != "diagnostic":
            continue
        try:
            diagnostic = Diagnostic.model_validate(message.get("diagnostic"))
        except ValidationError:
            continue
        if diagnostic.severity == severity:
            found.append(diagnostic)
    return found


def text_errors(stderr: str) -> list[str]:
    """`Error: ...` blocks of the human UI (used where `-json` is not available, e.g. `init`)."""
    text = _FRAME.sub("", stderr)
    starts = [m.start() for m in _TEXT_ERROR.finditer(text)]
    blocks = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        block = text[start + len("Error: ") : end].strip()
        blocks.append(re.sub(r"\n\s*\n+", "\n", block))
    return blocks


def tool_error(product: str, command: str, workdir: str, run: ToolRun) -> ToolError:
    """One ToolError for a failed run: the diagnostics from the JSON stream, else the text errors."""
    errors = [d.render() for d in json_diagnostics(json_messages(run.stdout))]
    if not errors:
        errors = text_errors(run.stderr) or text_errors(run.stdout)
    if not errors:
        tail = (run.stderr.strip() or run.stdout.strip())[-2000:]
        errors = [tail or f"exit status {run.returncode}, no output"]
    # One error per line group; continuation lines indented under their error.
    joined = "\n  ".join(error.strip().replace("\n", "\n    ") for error in errors)
    return ToolError(f"{product} {command} failed in {workdir}:\n  {joined}")

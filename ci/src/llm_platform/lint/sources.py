"""Reading YAML with positions: each document is composed into nodes that keep line/column marks, so
findings point at lines; values are constructed with YAML 1.1 rules, as Kubernetes reads them. Reading
and parsing are bounded (`llm_platform.documents`): a file beyond the limits is a finding, not a hang."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llm_platform.documents import MANIFEST_LIMITS, DocumentError, iter_yaml, locate, plain, read_text
from llm_platform.lint.model import Finding
from llm_platform.lint.rules import rule

__all__ = ["JsonPath", "SourceDoc", "SourceFile", "finding", "load_file", "locate", "plain"]

_TRUTHY = {"yes", "no", "on", "off"}
_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)
_BOOL_TAG = "tag:yaml.org,2002:bool"

JsonPath = tuple[str | int, ...]
# What a refused file is reported as: the reason it could not be parsed.
_READ_RULES = {
    "not-regular": "yaml-not-regular-file",
    "symlink-loop": "yaml-symlink-loop",
    "limit": "yaml-limits",
}


@dataclass
class SourceDoc:
    path: Path
    display: str
    index: int
    node: Node
    data: Any

    def locate(self, json_path: JsonPath = ()) -> tuple[int, int]:
        return locate(self.node, json_path)


@dataclass
class SourceFile:
    path: Path
    display: str
    docs: list[SourceDoc] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    text: str = ""


def finding(rule_id: str, display: str, line: int, col: int, message: str, obj: str | None = None) -> Finding:
    r = rule(rule_id)
    return Finding(
        path=display,
        line=max(line, 1),
        col=max(col, 1),
        severity=r.severity,
        rule_id=rule_id,
        message=message,
        object=obj,
    )


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _position(exc: DocumentError) -> tuple[int, int]:
    """Where to fix it: an unclosed quote or bracket where it opens, anything else where it was found."""
    return exc.opening or (exc.line or 1, exc.column or 1)


def _refused(sf: SourceFile, exc: DocumentError) -> None:
    rule_id = _READ_RULES.get(exc.kind, "yaml-syntax")
    if exc.kind in ("syntax", "limit"):
        message = exc.detail.removeprefix("not valid YAML: ")
    elif exc.kind in ("not-regular", "symlink-loop"):
        message = exc.detail
    else:
        message = f"cannot read file: {exc.detail.removeprefix('cannot read: ')}"
    line, col = _position(exc)
    sf.findings.append(finding(rule_id, sf.display, line, col, message))


def load_file(path: Path, display: str, text: str | None = None) -> SourceFile:
    """Parse one (multi-document) YAML file; problems become findings, never exceptions."""
    sf = SourceFile(path=path, display=display)
    if text is None:
        try:
            text = read_text(path, MANIFEST_LIMITS, source=display)
        except DocumentError as exc:
            _refused(sf, exc)
            return sf
    sf.text = text
    tab_lines = set()
    for m in _TAB_INDENT.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        tab_lines.add(line)
        sf.findings.append(
            finding("yaml-tab", display, line, m.end() - m.start(), "tab character in indentation")
        )
    try:
        for doc in iter_yaml(text, source=display, limits=MANIFEST_LIMITS):
            if doc.data is not None:
                sf.docs.append(
                    SourceDoc(path=path, display=display, index=doc.index, node=doc.node, data=doc.data)
                )
                _node_checks(sf, doc.node)
    except DocumentError as exc:
        if not (exc.syntax and _position(exc)[0] in tab_lines):  # a tab is the real cause: already reported
            _refused(sf, exc)
    return sf


def _node_checks(sf: SourceFile, root: Node) -> None:
    for node in _walk(root):
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                if isinstance(k, ScalarNode):
                    if k.value in seen and k.value != "<<":
                        line, col = _mark(k)
                        sf.findings.append(
                            finding(
                                "yaml-duplicate-key",
                                sf.display,
                                line,
                                col,
                                f"duplicate key {k.value!r}: the last one silently wins",
                            )
                        )
                    seen.add(k.value)
                if (
                    isinstance(v, ScalarNode)
                    and v.tag == _BOOL_TAG
                    and not v.style
                    and v.value.lower() in _TRUTHY
                ):
                    line, col = _mark(v)
                    sf.findings.append(
                        finding(
                            "yaml-truthy",
                            sf.display,
                            line,
                            col,
                            f"unquoted {v.value!r} is the boolean {v.value.lower() in ('yes', 'on')}"
                            " for Kubernetes (YAML 1.1); quote it if a string is meant",
                        )
                    )


def _walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, MappingNode):
            for k, v in n.value:
                stack.append(k)
                stack.append(v)
        elif isinstance(n, SequenceNode):
            stack.extend(n.value)

"""Reading YAML with positions: libyaml composes each document into nodes that keep line/column marks,
so findings point at lines; values are constructed with YAML 1.1 rules, as Kubernetes reads them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llm_platform.lint.model import Finding
from llm_platform.lint.rules import rule

_TRUTHY = {"yes", "no", "on", "off"}
_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)
_BOOL_TAG = "tag:yaml.org,2002:bool"

JsonPath = tuple[str | int, ...]
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def locate(node: Node, json_path: JsonPath) -> tuple[int, int]:
    """1-based line/col of the deepest part of `json_path` present under `node` (the key, for a mapping)."""
    pos = _mark(node)
    current: Node | None = node
    for part in json_path:
        nxt: Node | None = None
        if isinstance(current, MappingNode) and isinstance(part, str):
            for k, v in current.value:
                if isinstance(k, ScalarNode) and k.value == part:
                    pos, nxt = _mark(k), v
        elif isinstance(current, SequenceNode) and isinstance(part, int) and 0 <= part < len(current.value):
            nxt = current.value[part]
            pos = _mark(nxt)
        if nxt is None:
            break
        current = nxt
    return pos


def plain(value: Any) -> Any:
    """Constructed YAML to JSON-like values (dates stay the text the API server would get)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def load_file(path: Path, display: str, text: str | None = None) -> SourceFile:
    """Parse one (multi-document) YAML file; problems become findings, never exceptions."""
    sf = SourceFile(path=path, display=display)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            sf.findings.append(finding("yaml-syntax", display, 1, 1, f"cannot read file: {exc}"))
            return sf
    tab_lines = set()
    for m in _TAB_INDENT.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        tab_lines.add(line)
        sf.findings.append(
            finding("yaml-tab", display, line, m.end() - m.start(), "tab character in indentation")
        )
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            data = plain(loader.construct_document(node))
            if data is not None:
                sf.docs.append(SourceDoc(path=path, display=display, index=index, node=node, data=data))
                _node_checks(sf, node)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark, message = exc.problem_mark or exc.context_mark, str(exc.problem or exc.context)
        if (
            exc.context_mark is not None
            and exc.problem_mark is not None
            and exc.problem_mark.index >= len(text.rstrip())
        ):
            # Hit the end of the file (an unclosed quote or bracket): the opening is the place to fix.
            mark, message = exc.context_mark, f"{exc.context}: not closed before the end of the file"
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if line not in tab_lines:  # a tab is the real cause: already reported
            sf.findings.append(finding("yaml-syntax", display, line, col, message))
    except yaml.YAMLError as exc:
        sf.findings.append(finding("yaml-syntax", display, 1, 1, str(exc).splitlines()[0]))
    finally:
        loader.dispose()
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

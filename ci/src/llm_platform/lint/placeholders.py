"""config-placeholder: a value that still holds the upstream template's placeholder.

The upstream tree is a template whose git URL, GCP project and modelcar registry are placeholders
(`llm_platform.configure.placeholders`); a fork sets them with `llm-platform configure`. In a fork, any
string value still holding one is a finding; the template says `template: true` in its lint config, and
there the rule is off. Every YAML file of the linted tree is read (Applications, values files, the lint
config), as written: a value is reported once where it stands, however many renders include it. Comments
are not values and are not reported.
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llm_platform.configure.placeholders import MARKER
from llm_platform.documents import cut
from llm_platform.lint.rules import silences
from llm_platform.lint.sources import SourceDoc
from llm_platform.lint.tree import Tree

RULE = "config-placeholder"
_STR_TAG = "tag:yaml.org,2002:str"


def _silenced(doc: SourceDoc) -> bool:
    """The object's own `lint.llm-platform.io/ignore` annotation names the rule (or `*`)."""
    metadata = doc.data.get("metadata") if isinstance(doc.data, dict) else None
    return silences(metadata.get("annotations") if isinstance(metadata, dict) else None, RULE)


def _scalars(root: Node) -> list[ScalarNode]:
    """Every str scalar (keys included) of a document, each node once (an alias is its anchor's node)."""
    found: list[ScalarNode] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in reversed(node.value):
                stack.extend((value, key))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, ScalarNode) and node.tag == _STR_TAG:
            found.append(node)
    return found


def check(tree: Tree) -> None:
    if tree.config.template:
        return
    for source in tree.files.values():
        for doc in source.docs:
            hits = [node for node in _scalars(doc.node) if MARKER in str(node.value)]
            if not hits:
                continue
            if _silenced(doc):
                tree.silenced += len(hits)
                continue
            for node in hits:
                value = str(node.value)
                shown = cut(value, 120)
                tree.report_at(
                    RULE,
                    doc.display,
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                    f"{shown!r} still holds the template's placeholder {MARKER!r}: run `llm-platform configure` "
                    "(--repo-url, --project-id, --region) to set this fork's own values",
                )

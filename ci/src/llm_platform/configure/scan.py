"""Find every placeholder in one composed YAML or JSON file, with the exact characters to replace.

The file is composed by `llm_platform.bump.locate.compose_documents` (so every value keeps its source
marks, and an alias is the anchored node itself: a value written once is edited once). Recognised:

- a whole value that is the placeholder repository URL (repoURL, sourceRepos, lint `repo_urls`);
- a modelcar image: `[SCHEME://]REGISTRY/NAME[:TAG][@sha256:...]` with the placeholder registry prefix;
  only the prefix changes, so the digest stays;
- a whole value that is the placeholder project id (the gke ClusterSecretStore's projectID);
- the `targetRevision` of every source whose repoURL is our repository (the placeholder URL or the new
  one), never a chart's or another repository's, and only where that value is used by our sources alone
  (an anchor or `<<:` merge sharing it with anything else is refused: the edit would change that too);
- a `region:` field holding the placeholder region.

Anything else holding the placeholder (inside a longer value, in a key, written with escapes, a folded
or block scalar) cannot be rewritten exactly: it is a problem naming file:line, and the caller writes
nothing. Comments are not values: they are left as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llm_platform.bump.locate import (
    YamlParseError,
    compose_documents,
    effective_fields,
    literal_value_offset,
)
from llm_platform.bump.splice import TextEdit
from llm_platform.configure import placeholders
from llm_platform.configure.identity import Identity

PlaceholderKind = Literal["repo-url", "revision", "project-id", "registry", "region", "template", "unknown"]

_STR_TAG = "tag:yaml.org,2002:str"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_IMAGE_RE = re.compile(
    rf"^(?P<scheme>[a-z][a-z0-9+.-]*://)?(?P<registry>{re.escape(placeholders.REGISTRY)})/[a-z0-9][^\s]*$"
)
# Which option sets each placeholder (the hint of `--check`).
SET_BY: dict[PlaceholderKind, str] = {
    "repo-url": "configure --repo-url sets it",
    "project-id": "configure --project-id sets it",
    "registry": "configure --registry, or --project-id with --region, sets it",
    "unknown": "configure cannot rewrite this form: edit it by hand",
}
_SHOWN: dict[PlaceholderKind, str] = {
    "repo-url": placeholders.REPO_URL,
    "project-id": placeholders.PROJECT_ID,
    "registry": placeholders.REGISTRY,
}


def normalise_repo_url(url: str) -> str:
    """The comparison Argo CD and lint make between repository URLs (case, trailing `/`, `.git`)."""
    return url.strip().rstrip("/").removesuffix(".git").lower()


@dataclass(frozen=True)
class Found:
    """A placeholder still in the tree."""

    path: str
    line: int
    kind: PlaceholderKind
    placeholder: str  # the placeholder value itself (not the whole scalar)
    field: str

    def text(self) -> str:
        """`file:line: placeholder VALUE (which option sets it)`: one line of `configure --check`."""
        return f"{self.path}:{self.line}: placeholder {self.placeholder} ({SET_BY[self.kind]})"


@dataclass(frozen=True)
class Change:
    """One scalar whose value changes (or, for `template`, one mapping entry removed)."""

    path: str
    line: int
    field: str
    kind: PlaceholderKind
    old: str  # the whole value before
    new: str | None  # the whole value after; None: the entry is removed
    edit: TextEdit
    node_id: int  # the scalar's node (the key's, for a removed entry)


@dataclass
class FileScan:
    found: list[Found] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Options the changes need but were not given: option -> file:line of each placeholder that needs it.
    needs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def removed(self) -> frozenset[int]:
        return frozenset(c.node_id for c in self.changes if c.new is None)

    @property
    def expected(self) -> dict[int, str]:
        return {c.node_id: c.new for c in self.changes if c.new is not None}


def _join(where: str, key: str) -> str:
    return f"{where}{key}" if not where or where.endswith(": ") else f"{where}.{key}"


def _label(node: Node, index: int) -> str:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == "name" and isinstance(value, ScalarNode):
                return f"[name={value.value}]"
    return f"[{index}]"


def _is_str(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _STR_TAG


def reads_back_plain(value: str) -> bool:
    """Whether `value`, written as a plain scalar, reads back as this very string (not a number, a
    boolean, a comment or a syntax error)."""
    try:
        docs = compose_documents(f"k: {value}\n")
    except YamlParseError:
        return False
    node = docs[0].value[0][1] if docs and isinstance(docs[0], MappingNode) and docs[0].value else None
    return isinstance(node, ScalarNode) and node.tag == _STR_TAG and node.value == value


@dataclass(frozen=True)
class _Edge:
    """One place a scalar node is used: the line of its key, the key, and whether it is the
    targetRevision of one of our sources there."""

    line: int
    label: str
    our_revision: bool


class _Scanner:
    def __init__(self, text: str, path: str, identity: Identity | None, strip_template: bool) -> None:
        self.text = text
        self.path = path
        self.identity = identity
        self.strip_template = strip_template
        self.scan = FileScan()
        self._visited: set[int] = set()
        self._edges: dict[int, list[_Edge]] = {}
        self._revisions: dict[int, tuple[ScalarNode, str]] = {}
        self._changed: set[int] = set()
        self._ours = {normalise_repo_url(placeholders.REPO_URL)}
        if identity is not None:
            self._ours.add(normalise_repo_url(identity.repo_url))

    def run(self, documents: list[Node]) -> FileScan:
        many = len(documents) > 1
        for number, doc in enumerate(documents, start=1):
            self._walk(doc, f"doc {number}: " if many else "")
        if self.strip_template and documents and isinstance(documents[0], MappingNode):
            self._template(documents[0])
        self._check_revisions()
        self.scan.problems = list(dict.fromkeys(self.scan.problems))
        return self.scan

    def _line(self, node: Node) -> int:
        return int(node.start_mark.line) + 1

    def _problem(self, node: Node, where: str, message: str) -> None:
        self.scan.problems.append(f"{self.path}:{self._line(node)} ({where or 'document'}): {message}")

    def _edge(self, node: Node, edge: _Edge) -> None:
        if isinstance(node, ScalarNode):
            self._edges.setdefault(id(node), []).append(edge)

    def _walk(self, node: Node, where: str) -> None:
        if id(node) in self._visited:  # an alias of a node already seen: it is edited where it is written
            return
        self._visited.add(id(node))
        if isinstance(node, MappingNode):
            self._mapping(node, where)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self._edge(item, _Edge(self._line(node), f"{where}[{index}]", False))
                self._walk(item, f"{where}{_label(item, index)}")
        elif _is_str(node):
            assert isinstance(node, ScalarNode)
            self._scalar(node, where)

    def _mapping(self, node: MappingNode, where: str) -> None:
        fields = effective_fields(node)
        repo = fields.get("repoURL")
        ours = (
            repo is not None
            and _is_str(repo.value)
            and normalise_repo_url(str(repo.value.value)) in self._ours
        )
        for key, value in node.value:
            label = str(key.value) if isinstance(key, ScalarNode) else "?"
            if isinstance(key, ScalarNode) and placeholders.MARKER in str(key.value):
                self._found(key, _join(where, label), "unknown", placeholders.MARKER)
                self._problem(key, where, f"the key {key.value!r} holds the placeholder; rename it by hand")
            if isinstance(key, ScalarNode) and key.tag == _MERGE_TAG:
                self._walk(value, where)  # the merged mappings, as written; their keys count below too
                continue
            self._edge(value, _Edge(self._line(key), _join(where, label), label == "targetRevision" and ours))
            self._walk(value, _join(where, label))
        for name, entry in fields.items():
            if not entry.own:  # a field merged in with `<<:` is used here too
                self._edge(
                    entry.value,
                    _Edge(self._line(entry.key), _join(where, name), name == "targetRevision" and ours),
                )
        revision = fields.get("targetRevision")
        if ours and revision is not None and _is_str(revision.value):
            assert isinstance(revision.value, ScalarNode)
            self._revisions.setdefault(id(revision.value), (revision.value, _join(where, "targetRevision")))
        region = fields.get("region")
        if (
            region is not None
            and region.own
            and _is_str(region.value)
            and region.value.value == placeholders.REGION
            and self.identity is not None
            and self.identity.region != placeholders.REGION
        ):
            assert isinstance(region.value, ScalarNode)
            self._change(
                region.value, _join(where, "region"), "region", 0, placeholders.REGION, self.identity.region
            )

    def _need(self, option: str, node: Node) -> None:
        self.scan.needs.setdefault(option, []).append(f"{self.path}:{self._line(node)}")

    def _found(self, node: Node, where: str, kind: PlaceholderKind, shown: str) -> None:
        self.scan.found.append(Found(self.path, self._line(node), kind, shown, where))

    def _scalar(self, node: ScalarNode, where: str) -> None:
        value = str(node.value)
        if placeholders.MARKER not in value:
            return
        identity = self.identity
        if value == placeholders.REPO_URL:
            self._found(node, where, "repo-url", _SHOWN["repo-url"])
            if identity is not None:
                self._change(node, where, "repo-url", 0, value, identity.repo_url)
        elif (image := _IMAGE_RE.match(value)) is not None:
            self._found(node, where, "registry", _SHOWN["registry"])
            if identity is not None:
                new = identity.modelcar_registry
                if new is None:
                    self._need("--project-id", node)
                else:
                    self._change(node, where, "registry", image.start("registry"), placeholders.REGISTRY, new)
        elif value == placeholders.PROJECT_ID:
            self._found(node, where, "project-id", _SHOWN["project-id"])
            if identity is not None:
                if identity.project_id is None:
                    self._need("--project-id", node)
                else:
                    self._change(node, where, "project-id", 0, value, identity.project_id)
        else:
            self._found(node, where, "unknown", placeholders.MARKER)
            self._problem(
                node,
                where,
                f"{_cut(value)!r} holds the placeholder {placeholders.MARKER!r} inside a value configure does not "
                "know (not a whole repo URL, project id or modelcar image); edit it by hand",
            )

    def _change(
        self, node: ScalarNode, where: str, kind: PlaceholderKind, index: int, old: str, new: str
    ) -> None:
        """Replace `old`, at `index` of the node's value, by `new`: exactly those characters in the file."""
        if id(node) in self._changed:  # the same node reached again (an alias): one edit
            return
        offset = literal_value_offset(self.text, node)
        if offset is None:
            self._problem(
                node,
                where,
                f"the value is not written literally ({node.style or 'plain'} scalar with escapes, folded lines "
                "or a block style); configure cannot edit it exactly: write it plainly on one line",
            )
            return
        value = str(node.value)
        after = value[:index] + new + value[index + len(old) :]
        if after == value:
            return
        if node.style is None and not reads_back_plain(after):
            self._problem(
                node,
                where,
                f"{after!r} would not read back as that string written plainly here (YAML would read it as "
                "another type or syntax): quote the value, then run configure again",
            )
            return
        if node.style in ("'", '"') and (node.style in new or "\\" in new):
            self._problem(
                node, where, f"{new!r} cannot be written inside this {node.style}-quoted value as is"
            )
            return
        start = offset + index
        self._changed.add(id(node))
        self.scan.changes.append(
            Change(
                path=self.path,
                line=self._line(node),
                field=where,
                kind=kind,
                old=value,
                new=after,
                edit=TextEdit(start, start + len(old), old, new),
                node_id=id(node),
            )
        )

    def _check_revisions(self) -> None:
        """Set the revision of our sources, where the value belongs to our sources alone."""
        if self.identity is None:
            return
        for node, where in self._revisions.values():
            if node.value == self.identity.revision:
                continue
            others = [edge for edge in self._edges.get(id(node), []) if not edge.our_revision]
            if others:
                other = others[0]
                self._problem(
                    node,
                    where,
                    f"this targetRevision is shared (an anchor, alias or `<<:` merge) with {other.label} at line "
                    f"{other.line}, which is not a source of this repository: setting --revision here would change "
                    "it too; write the value out in each place",
                )
                continue
            self._change(node, where, "revision", 0, str(node.value), self.identity.revision)

    def _template(self, root: MappingNode) -> None:
        """Remove the lint config's `template: true` line: the configured fork is no longer the template."""
        for key, value in root.value:
            if not (isinstance(key, ScalarNode) and key.value == "template"):
                continue
            if not (
                isinstance(value, ScalarNode) and value.tag == _BOOL_TAG and value.value.lower() == "true"
            ):
                return  # `template: false` says what configure would make it say anyway
            start = key.start_mark.index
            line_start = self.text.rfind("\n", 0, start) + 1
            line_end = self.text.find("\n", value.end_mark.index)
            line_end = len(self.text) if line_end < 0 else line_end + 1
            rest = self.text[value.end_mark.index : line_end]
            if line_start != start or not re.fullmatch(r"[ \t]*(?:#[^\n]*)?\r?\n?", rest):
                self._problem(
                    key, "template", "`template: true` is not on a line of its own; remove it by hand"
                )
                return
            line = self.text[line_start:line_end]
            self.scan.changes.append(
                Change(
                    path=self.path,
                    line=self._line(key),
                    field="template",
                    kind="template",
                    old=line.rstrip("\r\n"),
                    new=None,
                    edit=TextEdit(line_start, line_end, line, ""),
                    node_id=id(key),
                )
            )
            return


def _cut(value: str, limit: int = 120) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def scan_documents(
    text: str,
    path: str,
    documents: list[Node],
    identity: Identity | None,
    *,
    strip_template: bool = False,
) -> FileScan:
    """The placeholders of one file; with `identity`, also the changes that set it (None: only find them).
    `strip_template`: the file is the lint config, whose `template: true` goes."""
    return _Scanner(text, path, identity, strip_template).run(documents)

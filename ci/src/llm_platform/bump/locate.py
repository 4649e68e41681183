"""Find every digest that pins one image repository in a YAML file, with the exact character span to edit.

The YAML is composed (not constructed) so each value keeps its source marks; aliases resolve to the
anchored node, so a digest written once behind an anchor is edited once. Recognised forms:

- a whole value naming the image: `oci://REPO[:TAG]@sha256:...` (KServe storageUri),
  `REPO[:TAG]@sha256:...` (containers[].image, image volumes' `reference`, Helm `image:` strings,
  kustomize `images:` given as strings);
- a mapping naming the repository with a sibling `digest:` field: kustomize `images:` entries
  (`newName`, or `name` when not renamed) and Helm values (`repository`/`repo`/`image`).

A reference to the repository that is not pinned by digest is an error: silently rewriting a tag
would change what it means.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llm_platform.bump.refs import RepositoryMatcher
from llm_platform.oci import DIGEST_RE

_STR_TAG = "tag:yaml.org,2002:str"
# Keys whose value may be a bare repository next to a `digest:` field.
_REPOSITORY_KEYS = ("newName", "name", "repository", "repo", "image")
_TAG_KEYS = ("tag", "newTag")


ReferenceForm = Literal["uri", "image", "digest-field"]


class YamlParseError(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Reference:
    """One digest to replace: where it is, what form it has, and what it holds now."""

    path: str  # file, posix, relative to the repository root
    line: int  # 1-based line of the digest
    column: int  # 1-based column where the digest starts
    field: str  # where in the document, e.g. "doc 2: spec.template.spec.containers[name=vllm].image"
    form: ReferenceForm
    digest: str  # the digest it holds now
    start: int  # character span of the digest text in the file
    end: int
    value: str  # the whole scalar value as parsed
    node_id: int = dataclass_field(repr=False, compare=False)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def value_with(self, digest: str) -> str:
        """The scalar's parsed value after the edit: only the digest differs."""
        return self.value.replace(self.digest, digest)


@dataclass
class FileScan:
    """What one file says about the repository."""

    references: list[Reference] = dataclass_field(default_factory=list)
    problems: list[str] = dataclass_field(default_factory=list)  # not pinned by digest, cannot splice: errors
    # Lines naming the repository outside any reference (comments, free text): warned about, not edited.
    unrecognised: list[int] = dataclass_field(default_factory=list)


def compose_documents(text: str) -> list[Node]:
    """The node graph of every document in `text` (empty documents dropped)."""
    yaml = YAML(typ="safe", pure=True)
    try:
        return [doc for doc in yaml.compose_all(io.StringIO(text)) if doc is not None]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlParseError(line, f"{exc.problem or exc.context}") from exc
    except YAMLError as exc:
        raise YamlParseError(None, str(exc)) from exc


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _is_str(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _STR_TAG


def _mapping_get(node: MappingNode, key: str) -> Node | None:
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return v
    return None


def _join(where: str, key: str) -> str:
    return f"{where}{key}" if not where or where.endswith(": ") else f"{where}.{key}"


def _item_label(node: Node, index: int) -> str:
    if isinstance(node, MappingNode):
        name = _mapping_get(node, "name")
        if isinstance(name, ScalarNode) and name.value:
            return f"[name={name.value}]"
    return f"[{index}]"


class _Scanner:
    def __init__(self, text: str, path: str, matcher: RepositoryMatcher) -> None:
        self.text = text
        self.path = path
        self.matcher = matcher
        self.scan = FileScan()
        self._visited: set[int] = set()
        self._handled: set[int] = set()  # bare-repository scalars explained by a sibling digest field
        self._covered: list[tuple[int, int]] = []  # spans of values that are references

    def run(self, documents: list[Node]) -> FileScan:
        many = len(documents) > 1
        for number, doc in enumerate(documents, start=1):
            self._walk(doc, f"doc {number}: " if many else "")
        self._find_unrecognised()
        return self.scan

    def _walk(self, node: Node, where: str) -> None:
        if id(node) in self._visited:  # an alias of a node already seen
            return
        self._visited.add(id(node))
        if isinstance(node, MappingNode):
            self._mapping(node, where)
            for key, value in node.value:
                self._walk(value, _join(where, key.value if isinstance(key, ScalarNode) else "?"))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, f"{where}{_item_label(item, index)}")
        elif isinstance(node, ScalarNode) and _is_str(node):
            self._scalar(node, where)

    def _problem(self, node: Node, where: str, message: str) -> None:
        line = node.start_mark.line + 1
        self._covered.append(self._span_of(node))
        self.scan.problems.append(f"{self.path}:{line} ({where or 'document'}): {message}")

    def _span_of(self, node: Node) -> tuple[int, int]:
        return node.start_mark.index, node.end_mark.index

    def _add(self, node: ScalarNode, where: str, form: ReferenceForm, digest: str) -> None:
        start, end = self._span_of(node)
        source = self.text[start:end]
        count = source.count(digest)
        if count != 1:
            # Escapes or line folding inside a quoted scalar: the digest's bytes are not literally there.
            self._problem(
                node, where, f"the digest is not written literally in {source!r}; cannot edit it exactly"
            )
            return
        offset = start + source.index(digest)
        line, column = _line_col(self.text, offset)
        self._covered.append((start, end))
        self.scan.references.append(
            Reference(
                path=self.path,
                line=line,
                column=column,
                field=where,
                form=form,
                digest=digest,
                start=offset,
                end=offset + len(digest),
                value=node.value,
                node_id=id(node),
            )
        )

    def _scalar(self, node: ScalarNode, where: str) -> None:
        found = self.matcher.match(node.value)
        if found is None or id(node) in self._handled:
            return
        if found.digest:
            self._add(node, where, "uri" if found.scheme else "image", found.digest)
        elif found.tag:
            self._problem(
                node, where, f"{node.value!r} is a tag reference; pin it by digest (@sha256:...) first"
            )
        else:
            self._problem(node, where, f"{node.value!r} names the image without a digest")

    def _mapping(self, node: MappingNode, where: str) -> None:
        """Repository-plus-`digest:` pairs (kustomize images entries, Helm values)."""
        for key_name in _REPOSITORY_KEYS:
            repo_node = _mapping_get(node, key_name)
            if not (isinstance(repo_node, ScalarNode) and _is_str(repo_node)):
                continue
            found = self.matcher.match(repo_node.value)
            if found is None or found.digest or found.tag or found.scheme:
                continue
            if key_name == "name":
                renamed = _mapping_get(node, "newName")
                if isinstance(renamed, ScalarNode) and renamed.value != repo_node.value:
                    # kustomize: `name` is what gets replaced; the image actually used is newName.
                    self._handled.add(id(repo_node))
                    self._covered.append(self._span_of(repo_node))
                    continue
            self._handled.add(id(repo_node))
            field_where = _join(where, key_name)
            digest_node = _mapping_get(node, "digest")
            if digest_node is None:
                tags = [t for t in _TAG_KEYS if _mapping_get(node, t) is not None]
                detail = f"a `{tags[0]}:` but no `digest:`" if tags else "no `digest:` field"
                self._problem(
                    repo_node, field_where, f"names {repo_node.value!r} with {detail}; pin it by digest"
                )
                return
            digest_where = _join(where, "digest")
            if not (isinstance(digest_node, ScalarNode) and DIGEST_RE.match(str(digest_node.value))):
                shown = digest_node.value if isinstance(digest_node, ScalarNode) else "(not a scalar)"
                self._problem(digest_node, digest_where, f"digest {shown!r} is not sha256:<64 hex>")
                return
            self._visited.add(id(digest_node))
            self._add(digest_node, digest_where, "digest-field", digest_node.value)
            self._covered.append(self._span_of(repo_node))
            return

    def _find_unrecognised(self) -> None:
        lines: set[int] = set()
        for offset in self.matcher.mentions(self.text):
            if not any(start <= offset < end for start, end in self._covered):
                lines.add(_line_col(self.text, offset)[0])
        self.scan.unrecognised = sorted(lines)


def scan_text(
    text: str, path: str, matcher: RepositoryMatcher, documents: list[Node] | None = None
) -> FileScan:
    """Every reference to `matcher.repository` in one file's text (already composed when `documents` given)."""
    docs = compose_documents(text) if documents is None else documents
    return _Scanner(text, path, matcher).run(docs)

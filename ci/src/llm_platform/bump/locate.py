"""Find every digest that pins one image repository in a YAML or JSON file, with the exact characters to edit.

The file is composed (not constructed) so each value keeps its source marks; aliases resolve to the
anchored node, so a digest written once behind an anchor is edited once. JSON files are composed by
`jsondoc` into the same kind of node graph. Recognised forms:

- a whole value naming the image: `oci://REPO[:TAG]@sha256:...` (KServe storageUri),
  `REPO[:TAG]@sha256:...` (containers[].image, image volumes' `reference`, Helm `image:` strings,
  kustomize `images:` given as strings);
- a mapping naming the repository with a sibling `digest:` field: kustomize `images:` entries
  (`newName`, or `name` when not renamed) and Helm values (`repository`/`repo`/`image`);
- a mapping that splits it into `registry:` + `repository:` (or `repo:`/`image:`) + `digest:` fields;
- in both mapping forms the fields may come from mappings merged in with `<<:` (own keys win, as in
  YAML's merge), so a `digest:` in a merged mapping is found and edited where it is written.

A digest may be written in uppercase hex (it is the same digest; the new one is written in lowercase),
and inside a double-quoted scalar it may be broken by `\\`-newline continuations: each of its
characters is then edited where it stands. A digest written with escapes (`\\x61`) cannot be edited
exactly and is refused.

A reference to the repository that is not pinned by digest is an error: silently rewriting a tag
would change what it means. So is a `digest:` shared, through an anchor or a merge, with a mapping
that names another repository: editing it would re-pin that image too. A digest shared with a field
that names no image changes there too; that is warned about, naming the line.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llm_platform.bump.jsondoc import JsonParseError, compose_json
from llm_platform.bump.refs import WRITTEN_DIGEST_RE, RepositoryMatcher, canonical_digest
from llm_platform.bump.snapshot import is_json_name

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Keys whose value may be a bare repository next to a `digest:` field (kustomize `newName` wins over `name`).
_REPOSITORY_KEYS = ("newName", "name", "repository", "repo", "image")
# Keys whose value is the repository without its registry when a `registry:` field is beside them.
_SPLIT_KEYS = ("repository", "repo", "image")
_TAG_KEYS = ("tag", "newTag")
# A `\`-newline continuation inside a double-quoted YAML scalar: contributes nothing to the value.
_CONTINUATION = r"(?:\\\r?\n[ \t]*)"


ReferenceForm = Literal["uri", "image", "digest-field", "split-field"]


class YamlParseError(Exception):
    """A YAML (or JSON) file that does not parse; `line` is 1-based when known."""

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
    digest: str  # the digest it holds now (lowercase: as OCI spells it)
    start: int  # character span of the digest text in the file (first to last character)
    end: int
    value: str  # the whole scalar value as parsed
    written: str = ""  # the digest as written (its hex may be uppercase)
    # The digest's characters in the file: one span, or several when `\`-newline continuations break it.
    segments: tuple[tuple[int, int], ...] = ()
    node_id: int = dataclass_field(default=0, repr=False, compare=False)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def value_with(self, digest: str) -> str:
        """The scalar's parsed value after the edit: only the digest differs."""
        written = self.written or self.digest
        index = self.value.rindex(written)
        return self.value[:index] + digest + self.value[index + len(written) :]


@dataclass
class FileScan:
    """What one file says about the repository."""

    references: list[Reference] = dataclass_field(default_factory=list)
    problems: list[str] = dataclass_field(default_factory=list)  # not pinned by digest, cannot splice: errors
    warnings: list[str] = dataclass_field(default_factory=list)  # edits that also change another field
    # Lines naming the repository outside any reference (comments, free text); the post-condition judges them.
    unrecognised: list[int] = dataclass_field(default_factory=list)


def compose_documents(text: str, path: str | None = None) -> list[Node]:
    """The node graph of every document in `text` (empty documents dropped); JSON when `path` ends in .json."""
    if path is not None and is_json_name(path):
        try:
            return compose_json(text, path)
        except JsonParseError as exc:
            raise YamlParseError(exc.line, exc.message) from exc
    yaml = YAML(typ="safe", pure=True)
    try:
        return [doc for doc in yaml.compose_all(io.StringIO(text)) if doc is not None]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlParseError(line, f"{exc.problem or exc.context}") from exc
    except YAMLError as exc:
        raise YamlParseError(None, str(exc)) from exc


def literal_value_offset(text: str, node: ScalarNode) -> int | None:
    """Where the scalar's value starts in `text`, when every character of the value is written there as it
    is: a plain scalar on one line, or a quoted one (YAML or JSON) without escapes or line breaks. Then
    replacing part of the value is a splice of exactly those characters. None otherwise (escapes, `''`,
    folded lines, block scalars, whose source is not the value), and such a value cannot be edited exactly."""
    start, end = node.start_mark.index, node.end_mark.index
    source = text[start:end]
    if "\n" in source or "\r" in source:
        return None
    if node.style in ("'", '"'):
        quoted = len(source) >= 2 and source[0] == source[-1] == node.style
        return start + 1 if quoted and source[1:-1] == node.value else None
    if node.style is None:
        return start if source == node.value else None
    return None  # `|` and `>`: indentation and chomping are not part of the value


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _is_str(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _STR_TAG


def _mapping_get(node: MappingNode, key: str) -> Node | None:
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key and k.tag != _MERGE_TAG:
            return v
    return None


@dataclass(frozen=True)
class _Field:
    key: ScalarNode  # the key as written: in this mapping, or the `<<` key that merged it in
    value: Node
    own: bool


def effective_fields(node: MappingNode, _seen: set[int] | None = None) -> dict[str, _Field]:
    """The mapping's keys as YAML's merge defines them: its own keys, then those merged in with `<<:`
    (a mapping or a sequence of them, earlier ones first), own keys winning."""
    seen = set() if _seen is None else _seen
    if id(node) in seen:
        return {}
    seen.add(id(node))
    own: dict[str, _Field] = {}
    merged: dict[str, _Field] = {}
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            continue
        if key.tag == _MERGE_TAG:
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                if isinstance(source, MappingNode):
                    for name, inner in effective_fields(source, seen).items():
                        merged.setdefault(name, _Field(key, inner.value, False))
        else:
            own.setdefault(str(key.value), _Field(key, value, True))
    return {**merged, **own}


def _join(where: str, key: str) -> str:
    return f"{where}{key}" if not where or where.endswith(": ") else f"{where}.{key}"


def _item_label(node: Node, index: int) -> str:
    if isinstance(node, MappingNode):
        name = _mapping_get(node, "name")
        if isinstance(name, ScalarNode) and name.value:
            return f"[name={name.value}]"
    return f"[{index}]"


@dataclass(frozen=True)
class _DigestUse:
    """A mapping whose `digest:` (own or merged) is a given scalar node."""

    line: int  # of the key that brings the digest in (`digest:` or `<<:`)
    names: str | None  # "ours", another repository, or None when the mapping names no image
    defines: bool  # the digest is written inside this mapping (not reached through an alias or a merge)


@dataclass(frozen=True)
class _Named:
    """The image a mapping names: "ours", another repository, or None; and the field that names it."""

    names: str | None
    entry: _Field | None
    key: str
    split: bool = False  # through `registry:` + `repository:` fields
    renamed_away: bool = False  # kustomize `name:` ours, `newName:` another image


class _Scanner:
    def __init__(self, text: str, path: str, matcher: RepositoryMatcher) -> None:
        self.text = text
        self.path = path
        self.matcher = matcher
        self.scan = FileScan()
        self._visited: set[int] = set()
        self._handled: set[int] = set()  # bare-repository scalars explained by a sibling digest field
        self._covered: list[tuple[int, int]] = []  # spans of values that are references
        self._refs: dict[int, Reference] = {}  # by digest node: one edit however many mappings share it
        self._uses: dict[int, list[_DigestUse]] = {}
        # scalar node -> (line, key) of every place it is a value, but as a `digest:`
        self._other_edges: dict[int, list[tuple[int, str]]] = {}

    def run(self, documents: list[Node]) -> FileScan:
        many = len(documents) > 1
        for number, doc in enumerate(documents, start=1):
            self._walk(doc, f"doc {number}: " if many else "")
        self._check_shared()
        self._find_unrecognised()
        self.scan.problems = list(dict.fromkeys(self.scan.problems))
        return self.scan

    def _walk(self, node: Node, where: str) -> None:
        if id(node) in self._visited:  # an alias of a node already seen
            return
        self._visited.add(id(node))
        if isinstance(node, MappingNode):
            self._mapping(node, where)
            for key, value in node.value:
                label = key.value if isinstance(key, ScalarNode) else "?"
                if isinstance(value, ScalarNode) and label != "digest":
                    self._other_edges.setdefault(id(value), []).append((key.start_mark.line + 1, str(label)))
                self._walk(value, _join(where, str(label)))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                if isinstance(item, ScalarNode):
                    self._other_edges.setdefault(id(item), []).append(
                        (node.start_mark.line + 1, f"[{index}]")
                    )
                self._walk(item, f"{where}{_item_label(item, index)}")
        elif isinstance(node, ScalarNode) and _is_str(node):
            self._scalar(node, where)

    def _problem(self, node: Node, where: str, message: str) -> None:
        line = node.start_mark.line + 1
        self._covered.append(self._span_of(node))
        self.scan.problems.append(f"{self.path}:{line} ({where or 'document'}): {message}")

    def _span_of(self, node: Node) -> tuple[int, int]:
        return node.start_mark.index, node.end_mark.index

    def _segments(self, node: ScalarNode, written: str) -> list[tuple[int, int]] | None:
        """Where the digest's characters stand in the file, or None when they are not all written literally."""
        start, end = self._span_of(node)
        source = self.text[start:end]
        if source.count(written) == 1:
            offset = start + source.index(written)
            return [(offset, offset + len(written))]
        if node.style != '"' or "\\" not in source:
            return None
        # Broken by `\`-newline continuations: each character literal, only continuations between them.
        pattern = re.compile(_CONTINUATION + "?" + (_CONTINUATION + "?").join(re.escape(c) for c in written))
        found = list(pattern.finditer(source))
        if len(found) != 1:
            return None
        segments: list[tuple[int, int]] = []
        index, position = found[0].start(), 0
        while position < len(written):
            if source[index] == written[position]:
                if segments and segments[-1][1] == start + index:
                    segments[-1] = (segments[-1][0], start + index + 1)
                else:
                    segments.append((start + index, start + index + 1))
                index += 1
                position += 1
            else:  # a continuation: skip it
                skip = re.compile(_CONTINUATION).match(source, index)
                assert skip is not None
                index = skip.end()
        return segments

    def _add(self, node: ScalarNode, where: str, form: ReferenceForm, written: str) -> None:
        if id(node) in self._refs:  # the same digest reached again (an alias, a merge)
            return
        segments = self._segments(node, written)
        if segments is None and written == self.matcher.current:
            segments = []  # already the new digest: nothing to edit, whatever the spelling around it
        if segments is None:
            source = self.text[node.start_mark.index : node.end_mark.index]
            self._problem(
                node,
                where,
                f"the digest is not written literally in {source!r} (escapes); cannot edit it exactly: "
                "write it plainly (sha256:<64 hex>)",
            )
            return
        first = segments[0][0] if segments else node.start_mark.index
        last = segments[-1][1] if segments else node.end_mark.index
        line, column = _line_col(self.text, first)
        self._covered.append(self._span_of(node))
        reference = Reference(
            path=self.path,
            line=line,
            column=column,
            field=where,
            form=form,
            digest=canonical_digest(written),
            start=first,
            end=last,
            value=node.value,
            written=written,
            segments=tuple(segments),
            node_id=id(node),
        )
        self._refs[id(node)] = reference
        self.scan.references.append(reference)

    def _scalar(self, node: ScalarNode, where: str) -> None:
        found = self.matcher.match(node.value)
        if found is None or id(node) in self._handled:
            return
        if found.written_digest:
            self._add(node, where, "uri" if found.scheme else "image", found.written_digest)
        elif found.tag:
            self._problem(
                node, where, f"{node.value!r} is a tag reference; pin it by digest (@sha256:...) first"
            )
        else:
            self._problem(
                node,
                where,
                f"{node.value!r} names the image without a digest — pin it ({self.matcher.repository}@sha256:...), "
                "or, if it is not a pin, comment the line out",
            )

    def _names(self, fields: dict[str, _Field]) -> _Named:
        """Which image a mapping names, and through which field."""
        registry = fields.get("registry")
        if registry is not None and _is_str(registry.value):
            registry_name = str(registry.value.value)
            for key in _SPLIT_KEYS:
                entry = fields.get(key)
                if entry is not None and _is_str(entry.value):
                    value = str(entry.value.value)
                    if self.matcher.is_split(registry_name, value):
                        return _Named("ours", entry, key, split=True)
                    return _Named(f"{registry_name}/{value}", entry, key)
        renamed = fields.get("newName")
        for key in _REPOSITORY_KEYS:
            entry = fields.get(key)
            if entry is None or not _is_str(entry.value):
                continue
            value = str(entry.value.value)
            found = self.matcher.match(value)
            bare = found is not None and not (found.digest or found.tag or found.scheme)
            if key == "name" and renamed is not None and _is_str(renamed.value):
                if bare and renamed.value.value != value:
                    # kustomize: `name` is what gets replaced; the image actually used is newName.
                    return _Named(str(renamed.value.value), entry, key, renamed_away=True)
                continue
            if bare:
                return _Named("ours", entry, key)
        for key in _REPOSITORY_KEYS:
            entry = fields.get(key)
            if entry is not None and _is_str(entry.value):
                return _Named(str(entry.value.value), entry, key)
        return _Named(None, None, "")

    def _mapping(self, node: MappingNode, where: str) -> None:
        """Repository-plus-`digest:` mappings (kustomize images entries, Helm values, split registry fields)."""
        fields = effective_fields(node)
        named = self._names(fields)
        digest = fields.get("digest")
        if digest is not None and isinstance(digest.value, ScalarNode):
            inside = node.start_mark.index <= digest.value.start_mark.index < node.end_mark.index
            self._uses.setdefault(id(digest.value), []).append(
                _DigestUse(
                    line=digest.key.start_mark.line + 1, names=named.names, defines=digest.own and inside
                )
            )
        entry = named.entry
        if entry is None:
            return
        if named.renamed_away:
            self._handled.add(id(entry.value))
            self._covered.append(self._span_of(entry.value))
            return
        if named.names != "ours":
            return
        repo_node = entry.value
        self._handled.add(id(repo_node))
        self._covered.append(self._span_of(repo_node))
        if named.split:
            self._covered.append(self._span_of(fields["registry"].value))
        field_where = _join(where, named.key)
        if digest is None:
            tags = [t for t in _TAG_KEYS if t in fields]
            detail = f"a `{tags[0]}:` but no `digest:`" if tags else "no `digest:` field"
            shown = self.matcher.repository if named.split else repo_node.value
            self._problem(repo_node, field_where, f"names {shown!r} with {detail}; pin it by digest")
            return
        digest_where = _join(where, "digest")
        digest_node = digest.value
        if not (isinstance(digest_node, ScalarNode) and WRITTEN_DIGEST_RE.match(str(digest_node.value))):
            shown = digest_node.value if isinstance(digest_node, ScalarNode) else "(not a scalar)"
            self._problem(
                digest_node, digest_where, f"digest {shown!r} is not sha256:<64 hex> — write the digest there"
            )
            return
        self._visited.add(id(digest_node))
        form: ReferenceForm = "split-field" if named.split else "digest-field"
        self._add(digest_node, digest_where, form, str(digest_node.value))

    def _check_shared(self) -> None:
        """A digest-only scalar the bump edits must pin nothing but this repository."""
        for node_id, reference in self._refs.items():
            if reference.form not in ("digest-field", "split-field"):
                continue  # the value names the repository itself: every use of it is a use of this image
            if reference.written == self.matcher.current:
                continue  # not edited
            for use in self._uses.get(node_id, []):
                if use.names in (None, "ours"):
                    if use.names is None and not use.defines:
                        self.scan.warnings.append(
                            f"{self.path}:{use.line}: this `digest:` is the one of line {reference.line} (an alias "
                            "or a `<<:` merge), which the bump changes; it changes here too"
                        )
                    continue
                self.scan.problems.append(
                    f"{self.path}:{use.line}: the `digest:` of {use.names} here is the same node as the one of "
                    f"{self.matcher.repository} at line {reference.line} (shared through an anchor or a `<<:` "
                    f"merge); bumping {self.matcher.repository} would re-pin {use.names} too: give each image "
                    "its own `digest:` value"
                )
            for line, key in self._other_edges.get(node_id, []):
                self.scan.warnings.append(
                    f"{self.path}:{line}: `{key}` is an alias of the digest at line {reference.line}, which the "
                    "bump changes; it changes there too"
                )

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
    docs = compose_documents(text, path) if documents is None else documents
    return _Scanner(text, path, matcher).run(docs)

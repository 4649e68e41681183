"""Bounded reading of YAML and JSON: every document the pipeline reads (specs, lint configs, locks, the
GitOps tree, CRDs, kustomize output, OCI layouts, auth files, caches) goes through here, so a hostile or
broken input ends as one `DocumentError` (an InputError: `file:line: what`), never as a hang, a traceback
or memory that grows without bound.

What is bounded, per kind of input (`Limits`, the presets below):

- bytes: a file is never read past its cap, and never opened at all unless it is a regular file
  (a FIFO, a device or a socket would block or never end);
- nodes: YAML nodes of a whole file, an alias counted as the size of what it expands to. The count is
  taken on the composed node graph (aliases share their nodes there), memoised per node, so an alias
  bomb (billion laughs) is refused from a few hundred nodes, never expanded; a file that may compose
  more nodes than its cap (a cheap count of indicator characters says) is first counted on the
  parser's event stream, which keeps nothing;
- aliases per document, recursive aliases (an anchor used inside itself) refused;
- nesting depth, checked iteratively (libyaml stops at 1000 levels by itself; JSON's decoder raises
  RecursionError, reported as too deep): no Python recursion over an unchecked depth.

YAML is read with YAML 1.1 rules, as Kubernetes reads it, by libyaml (CSafeLoader) where PyYAML has it;
a plain `=` is the string "=" (valid upstream YAML, as in the Alertmanager CRD's enums, that PyYAML
alone resolves to the unconstructible `tag:yaml.org,2002:value`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from llm_platform.errors import DocumentError

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one file may cost. `max_nodes` counts YAML nodes of the whole file, aliases expanded;
    `max_aliases` is per YAML document; JSON has no aliases, its size is bounded by `max_bytes`."""

    max_bytes: int
    max_depth: int
    max_nodes: int
    max_aliases: int


# Specs, lint configs, crds.lock.yaml, protected-resources.yaml, model locks, registry auth files:
# a few KB each, written by people; 1 MiB and 100 levels are two orders of magnitude of margin.
CONFIG_LIMITS = Limits(max_bytes=1 * MiB, max_depth=100, max_nodes=100_000, max_aliases=100)
# One file of the GitOps tree, one CRD file, one kustomize render: the largest upstream CRD file is
# 1.4 MB (22k-45k nodes, 20 levels of collections); the API server takes no object over 3 MiB. A node
# costs ~300 bytes once composed, so 500k nodes bound a file's parse to ~150 MB whatever its shape.
MANIFEST_LIMITS = Limits(max_bytes=16 * MiB, max_depth=200, max_nodes=500_000, max_aliases=1_000)
# kustomize output of one kustomization: every object it renders, in one stream.
RENDER_LIMITS = Limits(max_bytes=32 * MiB, max_depth=200, max_nodes=1_000_000, max_aliases=1_000)
# OCI image index, manifest and config JSON (the distribution spec has registries take manifests of
# at least 4 MiB; a config with a long history is well under that).
OCI_LIMITS = Limits(max_bytes=4 * MiB, max_depth=64, max_nodes=0, max_aliases=0)
# Our own caches (layer-digests.json: up to 3 x 20,000 entries of a few hundred bytes).
CACHE_LIMITS = Limits(max_bytes=64 * MiB, max_depth=16, max_nodes=0, max_aliases=0)

_CUT = 120  # longest excerpt of an input value an error message may carry


def cut(text: str, limit: int = _CUT) -> str:
    """`text` on one line, at most `limit` characters (a huge value is never echoed in full)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- files ---------------------------------------------------------------------------------------------

_FILE_TYPES = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def file_type(mode: int) -> str:
    return _FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")


def _os_error(source: str, exc: OSError) -> DocumentError:
    if exc.errno == errno.ENOENT:
        return DocumentError(source, "no such file", kind="missing")
    if exc.errno == errno.ELOOP:
        return DocumentError(source, "symlink loop: the path never resolves to a file", kind="symlink-loop")
    return DocumentError(source, f"cannot read: {exc.strerror or exc}", kind="unreadable")


def read_bytes(path: Path, limits: Limits, *, source: str | None = None) -> bytes:
    """The bytes of the regular file at `path` (symlinks followed), at most `limits.max_bytes`.

    Anything else is refused before it is opened: a FIFO or socket would block, a device never end.
    The file is opened non-blocking and checked again once open, so a swap in between changes nothing.
    """
    name = source if source is not None else str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _os_error(name, exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise DocumentError(
            name, f"{file_type(st.st_mode)}, not a regular file: not read", kind="not-regular"
        )
    _check_size(name, st.st_size, limits)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_error(name, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DocumentError(
                name, f"{file_type(st.st_mode)}, not a regular file: not read", kind="not-regular"
            )
        # Read what the file holds (one byte more, to see it grow), never more than the cap + 1.
        chunks, total, want = [], 0, min(st.st_size, limits.max_bytes) + 1
        while total <= limits.max_bytes:
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            want = min(limits.max_bytes + 1 - total, 1 << 16)  # growing since the fstat: in pieces
        data = b"".join(chunks)
    except OSError as exc:
        raise _os_error(name, exc) from None
    finally:
        os.close(fd)
    _check_size(name, len(data), limits)
    return data


def _check_size(source: str, size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise DocumentError(
            source,
            f"{size:,} bytes or more, over the limit of {limits.max_bytes:,} bytes for this kind of file",
            kind="limit",
        )


def decode(data: bytes, source: str) -> str:
    """UTF-8 text (a leading BOM dropped); bad bytes are one error naming their line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DocumentError(
            source, f"not UTF-8 text (byte 0x{data[exc.start]:02x})", kind="syntax", line=line
        ) from None


def read_text(path: Path, limits: Limits, *, source: str | None = None) -> str:
    name = source if source is not None else str(path)
    return decode(read_bytes(path, limits, source=name), name)


# -- YAML ----------------------------------------------------------------------------------------------

_VALUE_TAG = "tag:yaml.org,2002:value"
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    """The safe loader (libyaml when available), with a plain `=` read as the string "=": YAML 1.1's
    `value` type that PyYAML resolves it to has no constructor, and is no type in YAML 1.2 at all.

    `impure` is set when a document constructs something that is not JSON-like (a date, bytes, a set,
    a key that is not a string): only such documents need the `plain` pass."""

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _VALUE_TAG]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }
    impure = False

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        """SafeConstructor's (merge keys, unhashable keys refused), noting keys that are not strings."""
        if not isinstance(node, MappingNode):
            return super().construct_mapping(node, deep=deep)
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if type(key) is not str:
                if not isinstance(key, Hashable):
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "found unhashable key",
                        key_node.start_mark,
                    )
                self.impure = True
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _noting_impure(constructor: Any) -> Any:
    def construct(loader: _Loader, node: Node) -> Any:
        loader.impure = True
        return constructor(loader, node)

    return construct


_Loader.add_constructor(_VALUE_TAG, SafeConstructor.construct_yaml_str)
for _tag in ("binary", "timestamp", "omap", "pairs", "set"):
    _Loader.add_constructor(
        f"tag:yaml.org,2002:{_tag}",
        _noting_impure(SafeConstructor.yaml_constructors[f"tag:yaml.org,2002:{_tag}"]),
    )

# Characters YAML forbids in a stream (PyYAML's reader rule), to point at the first one.
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class YamlDocument:
    """One document of a YAML stream: its composed node (positions) and its plain, JSON-like data."""

    index: int
    node: Node
    data: Any

    def locate(self, json_path: tuple[str | int, ...] = ()) -> tuple[int, int]:
        return locate(self.node, json_path)


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def locate(node: Node, json_path: tuple[str | int, ...]) -> tuple[int, int]:
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
    """Constructed YAML to JSON-like values (dates stay the text the API server would get).
    Recursive: only ever called on documents whose depth was checked."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _node_estimate(text: str) -> int:
    """An upper bound of the nodes `text` composes to: every node but a stream's first root is
    introduced by one of these indicators (a flow entry by `[`, `{` or `,`, a mapping entry's key and
    value by `:` or `?`, a block entry or a further document by `-`). Linear, at C speed; at most
    2 * len(text) + 1, so a short text needs no counting."""
    if 2 * len(text) + 1 <= _SHORT_TEXT_NODES:
        return 2 * len(text) + 1
    pairs = text.count(":") + text.count("?") + text.count(",") + text.count("[") + text.count("{")
    return 1 + text.count("-") + 2 * pairs


_SHORT_TEXT_NODES = 100_000
# An alias is `*` and an anchor name, after a line start, an indicator (`-`, `?`, `:`) or a flow
# punctuation, and blanks. Patterns and prose in descriptions (`[a-z]*`, `*.example.com`) are not.
_ALIAS_CANDIDATE = re.compile(r"\*[^\s,\[\]{}]")
_BEFORE_ALIAS = frozenset("\n\r\x85\u2028\u2029\ufeff-?:,[{")


def _may_alias(text: str) -> bool:
    """False only if `text` holds no alias (a document without one is a tree, checked faster)."""
    for m in _ALIAS_CANDIDATE.finditer(text):
        i = m.start() - 1
        while i >= 0 and text[i] in " \t":
            i -= 1
        if i < 0 or text[i] in _BEFORE_ALIAS:
            return True
    return False


class _Parse:
    """One bounded parse of a YAML stream."""

    def __init__(self, text: str, source: str, limits: Limits, unique_keys: bool) -> None:
        self.text = text
        self.source = source
        self.limits = limits
        self.unique_keys = unique_keys
        self.budget = limits.max_nodes  # nodes left for the rest of the file, aliases expanded
        self.may_alias = _may_alias(text)

    def error(self, detail: str, node: Node | None = None, kind: str = "limit") -> DocumentError:
        line, col = _mark(node) if node is not None else (None, None)
        return DocumentError(self.source, detail, kind=kind, line=line, column=col)

    def too_many(self, node: Node | None) -> DocumentError:
        return self.error(
            f"more than {self.limits.max_nodes:,} YAML nodes (aliases counted as what they expand to): "
            "not parsed",
            node,
        )

    def too_deep(self, node: Node | None) -> DocumentError:
        return self.error(f"nested deeper than {self.limits.max_depth} levels: not parsed", node)

    def precount(self) -> None:
        """Refuse a stream that composes to more nodes than the cap before composing it (composed
        nodes are what costs memory): counted on the event stream, which keeps nothing."""
        if min(_node_estimate(self.text), 2 * len(self.text) + 1) <= self.limits.max_nodes:
            return
        loader = _Loader(self.text)
        nodes = 0
        try:
            while loader.check_event():
                event = loader.get_event()
                if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
                    nodes += 1
                    if nodes > self.limits.max_nodes:
                        mark = event.start_mark
                        raise DocumentError(
                            self.source,
                            f"more than {self.limits.max_nodes:,} YAML nodes: not parsed",
                            kind="limit",
                            line=mark.line + 1 if mark is not None else None,
                        )
        finally:
            loader.dispose()

    def check(self, root: Node) -> None:
        """Depth, nodes (aliases expanded), aliases and recursion of one composed document."""
        if isinstance(root, ScalarNode):
            self.budget -= 1
        elif self.may_alias:
            self.budget -= self._check_graph(root)
        else:
            self.budget -= self._check_tree(root)  # without aliases, composed == expanded
        if self.budget < 0:
            raise self.too_many(root)

    def _unique(self, node: MappingNode) -> None:
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, ScalarNode) and key.value != "<<":
                if key.value in seen:
                    raise self.error(f"duplicate key {cut(key.value, 60)!r}", key, kind="syntax")
                seen.add(key.value)

    def _check_tree(self, root: Node) -> int:
        """The size of a document without aliases (a tree), level by level: only collections are
        visited, and there are at most `max_depth` levels to go through."""
        unique = self.unique_keys
        nodes, depth = 1, 1
        level = [root]
        while level:
            if depth > self.limits.max_depth:
                raise self.too_deep(level[0])
            below: list[Node] = []
            for node in level:
                if type(node) is MappingNode:
                    nodes += 2 * len(node.value)
                    if unique:
                        self._unique(node)
                    for key, value in node.value:
                        if type(value) is not ScalarNode:
                            below.append(value)
                        if type(key) is not ScalarNode:
                            below.append(key)
                else:
                    nodes += len(node.value)
                    below.extend([value for value in node.value if type(value) is not ScalarNode])
            level = below
            depth += 1
        return nodes

    def _check_graph(self, root: Node) -> int:
        """The expanded size of `root`, memoised per node (linear in the composed graph)."""
        max_depth, max_aliases, budget = self.limits.max_depth, self.limits.max_aliases, self.budget
        size: dict[int, int] = {}
        height: dict[int, int] = {}
        active: set[int] = set()
        aliases = 0
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            nid = id(node)
            if leaving:
                active.discard(nid)
                children = _children(node)
                total = 1 + sum(size[id(c)] for c in children)
                depth = 1 + max((height[id(c)] for c in children), default=0)
                if depth > max_depth:
                    raise self.too_deep(node)
                if total > budget:
                    raise self.too_many(node)
                size[nid], height[nid] = total, depth
                continue
            if nid in size:
                aliases += 1
                if aliases > max_aliases:
                    raise self.error(f"more than {max_aliases:,} aliases in one document: not parsed", node)
                continue
            if nid in active:
                raise self.error("recursive alias: an anchor is used inside itself", node)
            if type(node) is ScalarNode:
                size[nid], height[nid] = 1, 0
                continue
            if self.unique_keys and type(node) is MappingNode:
                self._unique(node)
            active.add(nid)
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node))
        return size[id(root)]

    def syntax_error(self, exc: yaml.YAMLError) -> DocumentError:
        if isinstance(exc, ReaderError):
            bad = _NON_PRINTABLE.search(self.text)
            if bad is not None:
                at = bad.start()
                return DocumentError(
                    self.source,
                    f"not valid YAML: control character {ord(bad.group()):#04x} (YAML allows none but "
                    "tab, newline and carriage return)",
                    kind="syntax",
                    line=self.text.count("\n", 0, at) + 1,
                    column=at - self.text.rfind("\n", 0, at),
                )
            return DocumentError(self.source, f"not valid YAML: {exc.reason}", kind="syntax")
        if isinstance(exc, yaml.MarkedYAMLError):
            mark, message = exc.problem_mark or exc.context_mark, str(exc.problem or exc.context)
            opening: tuple[int, int] | None = None
            if (
                exc.context_mark is not None
                and exc.problem_mark is not None
                and exc.problem_mark.index >= len(self.text.rstrip())
            ):
                # Hit the end of the file (an unclosed quote or bracket): the opening is the place to fix.
                opening = (exc.context_mark.line + 1, exc.context_mark.column + 1)
                message = f"{exc.context} (line {opening[0]}): not closed before the end of the file"
            line: int | None = mark.line + 1 if mark is not None else None
            col: int | None = mark.column + 1 if mark is not None else None
            if "maximum nesting depth" in message:  # libyaml's own cap (1000 levels)
                return DocumentError(
                    self.source,
                    f"nested deeper than {self.limits.max_depth} levels: not parsed",
                    kind="limit",
                    line=line,
                    column=col,
                )
            err = DocumentError(
                self.source, f"not valid YAML: {message}", kind="syntax", line=line, column=col
            )
            err.opening = opening
            return err
        return DocumentError(self.source, f"not valid YAML: {str(exc).splitlines()[0]}", kind="syntax")


def _children(node: Node) -> list[Node]:
    if type(node) is MappingNode:
        return [part for pair in node.value for part in pair]
    return list(node.value)


def iter_yaml(
    text: str | bytes, *, source: str, limits: Limits = MANIFEST_LIMITS, unique_keys: bool = False
) -> Iterator[YamlDocument]:
    """The documents of a YAML stream, each checked against `limits` before it is constructed.

    Raises DocumentError at the first problem, after yielding the documents before it. With
    `unique_keys`, a duplicate mapping key is an error (YAML says keys are unique; Kubernetes manifests
    are linted for it instead). An empty document yields data None.
    """
    if isinstance(text, bytes):
        _check_size(source, len(text), limits)
        text = decode(text, source)
    else:
        _check_size(source, len(text), limits)
    parse = _Parse(text, source, limits, unique_keys)
    try:
        parse.precount()
    except yaml.YAMLError as exc:
        raise parse.syntax_error(exc) from None
    loader = _Loader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
                parse.check(node)
                loader.impure = False
                data = loader.construct_document(node)
                if loader.impure or parse.may_alias:  # else it is JSON-like already, and a tree
                    data = plain(data)
            except yaml.YAMLError as exc:
                raise parse.syntax_error(exc) from None
            except RecursionError:  # only the pure-Python composer (no libyaml) recurses per level
                raise DocumentError(
                    source, f"nested deeper than {limits.max_depth} levels: not parsed", kind="limit"
                ) from None
            yield YamlDocument(index=index, node=node, data=data)
            index += 1
    finally:
        loader.dispose()


def load_yaml(
    text: str | bytes, *, source: str, limits: Limits = CONFIG_LIMITS, unique_keys: bool = True
) -> YamlDocument | None:
    """The one document of a YAML stream (None when it holds none)."""
    found: YamlDocument | None = None
    for doc in iter_yaml(text, source=source, limits=limits, unique_keys=unique_keys):
        if found is not None:
            line, _ = doc.locate()
            raise DocumentError(
                source, "not valid YAML: expected one document, found another", kind="syntax", line=line
            )
        found = doc
    return found


def load_yaml_file(
    path: Path, limits: Limits = CONFIG_LIMITS, *, source: str | None = None, unique_keys: bool = True
) -> YamlDocument | None:
    name = source if source is not None else str(path)
    return load_yaml(
        read_bytes(path, limits, source=name), source=name, limits=limits, unique_keys=unique_keys
    )


# -- JSON ----------------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_depth_line(text: str, max_depth: int) -> int | None:
    """Line where `text` first nests deeper than `max_depth` (only run once a document is refused)."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                return text.count("\n", 0, m.start()) + 1
        elif token in "]}":
            depth -= 1
    return None


def load_json(data: bytes | str, *, source: str, limits: Limits) -> Any:
    """A JSON document, at most `limits.max_bytes` and `limits.max_depth` deep."""
    _check_size(source, len(data), limits)
    text = decode(data, source) if isinstance(data, bytes) else data
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(source, f"not valid JSON: {exc}", kind="syntax", line=exc.lineno) from None
    except RecursionError:
        line = _json_depth_line(text, limits.max_depth)
        raise DocumentError(
            source, f"nested deeper than {limits.max_depth} levels: not parsed", kind="limit", line=line
        ) from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's conversion limit
        raise DocumentError(source, f"not valid JSON: {exc}", kind="syntax") from None
    if isinstance(value, (dict, list)):
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:
            item, depth = stack.pop()
            if depth > limits.max_depth:
                line = _json_depth_line(text, limits.max_depth)
                raise DocumentError(
                    source,
                    f"nested deeper than {limits.max_depth} levels: not parsed",
                    kind="limit",
                    line=line,
                )
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    stack.append((child, depth + 1))
    return value


def load_json_file(path: Path, limits: Limits, *, source: str | None = None) -> Any:
    name = source if source is not None else str(path)
    return load_json(read_bytes(path, limits, source=name), source=name, limits=limits)

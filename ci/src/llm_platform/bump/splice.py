"""Replace digests (or, generically, chosen characters of chosen scalars: `splice_text`, `verify_edit`) by
splicing their exact characters, then prove the result is the intended edit.

The proof re-parses the new text and walks it beside the original, node by node: same documents,
same kinds, tags, styles, anchors, keys and values, except the edited scalars, which must now hold
exactly the new digest. Everything outside the spliced spans is byte-identical by construction, so
comments, order, quoting, line width and `---` separators survive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llm_platform.bump.locate import Reference, YamlParseError, compose_documents, scan_text
from llm_platform.bump.refs import RepositoryMatcher
from llm_platform.errors import SpliceVerificationError


def splice_digests(text: str, references: Sequence[Reference], new_digest: str) -> str:
    """`text` with each reference's digest characters replaced by `new_digest`, nothing else touched.

    A digest broken by `\\`-newline continuations has several segments: each gets the matching slice
    of the new digest, so the continuations stay where they are."""
    edits: list[tuple[int, int, str]] = []
    for ref in references:
        written = ref.written or ref.digest
        segments = ref.segments or ((ref.start, ref.end),)
        position = 0
        for start, end in segments:
            piece = written[position : position + end - start]
            if text[start:end] != piece:
                raise SpliceVerificationError(f"{ref.where}: digest span moved or overlaps; refusing to edit")
            edits.append((start, end, new_digest[position : position + end - start]))
            position += end - start
        if position != len(written) or len(written) != len(new_digest):
            raise SpliceVerificationError(
                f"{ref.where}: digest span does not cover the digest; refusing to edit"
            )
    pieces: list[str] = []
    cursor = 0
    for start, end, replacement in sorted(edits):
        if start < cursor:
            raise SpliceVerificationError(f"digest spans overlap at offset {start}; refusing to edit")
        pieces.append(text[cursor:start])
        pieces.append(replacement)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _same_shape(old: Node, new: Node) -> bool:
    return (
        type(old) is type(new)
        and old.tag == new.tag
        and getattr(old, "anchor", None) == getattr(new, "anchor", None)
        and getattr(old, "style", None) == getattr(new, "style", None)
        and getattr(old, "flow_style", None) == getattr(new, "flow_style", None)
    )


def _compare(
    old: Node,
    new: Node,
    expected: Mapping[int, str],
    path: str,
    seen: set[tuple[int, int]],
    removed: frozenset[int] = frozenset(),
) -> str | None:
    """First difference between the trees other than the expected scalar values, or None. Mapping entries
    whose key node (of `old`) is in `removed` must be gone from `new`, nothing else."""
    pair = (id(old), id(new))
    if pair in seen:
        return None
    seen.add(pair)
    if not _same_shape(old, new):
        return f"{path or 'document'}: node kind, tag, style or anchor changed"
    if isinstance(old, ScalarNode):
        want = expected.get(id(old), old.value)
        if new.value != want:
            return f"{path or 'document'}: value {new.value!r}, expected {want!r}"
        return None
    if isinstance(old, SequenceNode):
        if len(old.value) != len(new.value):
            return f"{path}: sequence length changed"
        for index, (a, b) in enumerate(zip(old.value, new.value, strict=True)):
            diff = _compare(a, b, expected, f"{path}[{index}]", seen, removed)
            if diff:
                return diff
        return None
    if isinstance(old, MappingNode):
        kept = [(k, v) for k, v in old.value if id(k) not in removed]
        if len(kept) != len(new.value):
            return f"{path}: mapping size changed"
        for (ka, va), (kb, vb) in zip(kept, new.value, strict=True):
            label = ka.value if isinstance(ka, ScalarNode) else "?"
            diff = _compare(ka, kb, {}, f"{path}.{label}(key)", seen) or _compare(
                va, vb, expected, f"{path}.{label}" if path else str(label), seen, removed
            )
            if diff:
                return diff
        return None
    return f"{path}: unknown node type {type(old).__name__}"


def verify_splice(
    path: str,
    old_documents: list[Node],
    new_text: str,
    references: Sequence[Reference],
    new_digest: str,
    matcher: RepositoryMatcher,
    reference_count: int,
) -> None:
    """Raise SpliceVerificationError unless `new_text` parses to `old_documents` with exactly these digests replaced.

    `references` are the edited ones; `reference_count` is how many the file holds in all (the others
    already held the new digest).
    """
    try:
        new_documents = compose_documents(new_text, path)
    except YamlParseError as exc:
        raise SpliceVerificationError(f"{path}: the edited file no longer parses ({exc.message})") from exc
    if len(new_documents) != len(old_documents):
        raise SpliceVerificationError(f"{path}: the edit changed the number of documents")
    expected = {ref.node_id: ref.value_with(new_digest) for ref in references}
    seen: set[tuple[int, int]] = set()
    for number, (old, new) in enumerate(zip(old_documents, new_documents, strict=True), start=1):
        diff = _compare(old, new, expected, "", seen)
        if diff:
            raise SpliceVerificationError(
                f"{path}: document {number}: the edit changed more than the digest: {diff}"
            )
    # Re-extract, as a reader of the file would: every reference now holds the new digest, none lost.
    rescan = scan_text(new_text, path, matcher, new_documents)
    stale = [ref.where for ref in rescan.references if ref.digest != new_digest]
    if stale or len(rescan.references) != reference_count or rescan.problems:
        raise SpliceVerificationError(
            f"{path}: after the edit {len(rescan.references)} references were found "
            f"({reference_count} expected), stale: {stale or 'none'}"
        )


@dataclass(frozen=True)
class TextEdit:
    """Replace the characters `text[start:end]`, which must read `old`, by `new` (empty: delete them)."""

    start: int
    end: int
    old: str
    new: str


def splice_text(text: str, edits: Sequence[TextEdit]) -> str:
    """`text` with each edit's span replaced, nothing else touched; a span that does not hold what the
    edit expects, or that overlaps another, is refused (the edit was derived from another text)."""
    pieces: list[str] = []
    cursor = 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        if edit.start < cursor:
            raise SpliceVerificationError(f"edit spans overlap at offset {edit.start}; refusing to edit")
        if text[edit.start : edit.end] != edit.old:
            raise SpliceVerificationError(
                f"offset {edit.start}: expected {edit.old!r} there, found {text[edit.start : edit.end]!r}; "
                "refusing to edit"
            )
        pieces.append(text[cursor : edit.start])
        pieces.append(edit.new)
        cursor = edit.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def verify_edit(
    path: str,
    old_documents: list[Node],
    new_text: str,
    expected: Mapping[int, str],
    removed: frozenset[int] = frozenset(),
) -> list[Node]:
    """Raise SpliceVerificationError unless `new_text` parses to `old_documents` with exactly the scalars
    in `expected` (by node id in the old documents) now holding their new values and the mapping entries
    whose key node is in `removed` gone (a document left empty by that disappears); else the new documents.

    The generic form of `verify_splice`: the caller knows which scalars it meant to change."""
    try:
        new_documents = compose_documents(new_text, path)
    except YamlParseError as exc:
        raise SpliceVerificationError(f"{path}: the edited file no longer parses ({exc.message})") from exc
    kept = [
        doc
        for doc in old_documents
        if not (isinstance(doc, MappingNode) and doc.value and all(id(k) in removed for k, _ in doc.value))
    ]
    if len(new_documents) != len(kept):
        raise SpliceVerificationError(f"{path}: the edit changed the number of documents")
    seen: set[tuple[int, int]] = set()
    for number, (old, new) in enumerate(zip(kept, new_documents, strict=True), start=1):
        diff = _compare(old, new, expected, "", seen, removed)
        if diff:
            raise SpliceVerificationError(
                f"{path}: document {number}: the edit changed more than it meant to: {diff}"
            )
    return new_documents

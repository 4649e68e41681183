"""The bump's post-condition: once the edit is planned, no pin of the image's old digest is left in the tree.

An independent check, deliberately simple and conservative, and separate from the locator (it shares
no code with `locate`, `refs` or `splice`): it reads the planned contents (every edited file as it
will be, every other file as it is) as a mapping of path -> bytes, so the work tree (`--commit`, a
plain edit, `--dry-run`) and a fetched commit (`--push`) are judged by the same function.

Files: every regular file of the GitOps tree, whatever its name (symlinks followed inside the
repository, by the caller). Binary files (a NUL byte) are skipped. A file larger than `SIZE_LIMIT` is
not parsed: if its bytes name the repository, the bump fails. So does a file that is not UTF-8 and
names the repository.

Mentions: the repository (`REGISTRY/PATH`, any letter case) and, for charts that split it into
`registry:` and `repository:` fields, `PATH` alone when it has a `/`. They are searched after undoing
`\\`-newline continuations and escapes of ASCII characters (`\\/`, `\\u002f`, `\\x2f`), so a reference
written with escapes or broken across lines inside a quoted string is found too. A mention must stand
alone: `REPO-other`, `REPO/sub` and `mirror.example/REPO` are other repositories.

Every mention either

1. carries the new digest: it is followed by `[:TAG]@<new digest>`, or (YAML, JSON) it is the whole
   value of a field whose mapping, `<<:` merges included, has `digest: <new digest>`; or
2. is provably not a pin of this image:
   - it is in a Markdown, reStructuredText or AsciiDoc file (documentation, never applied);
   - it is in a YAML comment (outside every scalar of a file that parses), or on a line whose first
     non-blank character is `#` (a commented-out line; also inside a block scalar, whose text is a
     script or embedded YAML) or, in a file that is neither YAML nor JSON, `//`;
   - it is a kustomize `images:` entry's `name:` renamed by `newName:` to another image;
   - it is the `PATH`-only form beside a `registry:` naming another registry;
3. or the bump fails, naming `file:line`, what is there and what to do. Nothing is written.
"""

from __future__ import annotations

import bisect
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llm_platform.bump.jsondoc import JsonParseError, compose_json

SIZE_LIMIT = 4 * 1024 * 1024
PROSE_SUFFIXES = (".md", ".markdown", ".mdx", ".rst", ".adoc", ".asciidoc")
_YAML_SUFFIXES = (".yaml", ".yml")
_YAML_NAMES = ("Kustomization",)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_ESCAPE_RE = re.compile(r"\\(?:(\r?\n[ \t]*)|(\\)|(/)|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|U([0-9a-fA-F]{8}))")
_PIN_TAIL_RE = re.compile(
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-fA-F]{64})(?![0-9A-Za-z]))?"
)
_BEFORE = r"(?<![A-Za-z0-9_.\-/])"
_AFTER = r"(?![A-Za-z0-9_/]|[.\-][A-Za-z0-9])"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Report:
    failures: list[Finding] = field(default_factory=list)  # mentions not proven: the bump fails
    ignored: list[Finding] = field(default_factory=list)  # mentions proven not to be pins (and why)
    checked: int = 0  # files read


def _kind(path: str) -> str:
    name = PurePosixPath(path).name
    if name.lower().endswith(PROSE_SUFFIXES):
        return "prose"
    if name.endswith(_YAML_SUFFIXES) or name in _YAML_NAMES:
        return "yaml"
    if name.endswith(".json"):
        return "json"
    return "text"


def _unescape(text: str) -> tuple[str, list[int] | None]:
    """`text` with continuations removed and ASCII escapes decoded, and the original offset of each character."""
    if "\\" not in text:
        return text, None
    out: list[str] = []
    offsets: list[int] = []
    cursor = 0
    for match in _ESCAPE_RE.finditer(text):
        out.append(text[cursor : match.start()])
        offsets.extend(range(cursor, match.start()))
        cursor = match.end()
        continuation, backslash, slash, *codes = match.groups()
        if continuation is not None:
            continue
        if backslash is not None or slash is not None:
            out.append(backslash or slash)
            offsets.append(match.start())
            continue
        code = int(next(c for c in codes if c is not None), 16)
        if 0x20 <= code < 0x7F:
            out.append(chr(code))
            offsets.append(match.start())
        else:  # not a character of a name: keep the escape as written
            out.append(match.group())
            offsets.extend(range(match.start(), match.end()))
    out.append(text[cursor:])
    offsets.extend(range(cursor, len(text)))
    return "".join(out), offsets


@dataclass(frozen=True)
class _Scalar:
    start: int
    end: int
    node: ScalarNode
    # Every mapping that has it as the value of a key, merges included (an anchored value has several).
    parents: tuple[tuple[MappingNode, str], ...]


def _compose(text: str, kind: str) -> list[Node] | None:
    try:
        if kind == "json":
            return compose_json(text)
        return [d for d in YAML(typ="safe", pure=True).compose_all(io.StringIO(text)) if d is not None]
    except (YAMLError, JsonParseError):
        return None


def _scalars(documents: list[Node]) -> list[_Scalar]:
    nodes: dict[int, ScalarNode] = {}
    parents: dict[int, list[tuple[MappingNode, str]]] = {}
    seen: set[int] = set()
    stack: list[Node] = list(documents)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
            for name, value in _fields(node).items():
                if isinstance(value, ScalarNode):
                    parents.setdefault(id(value), []).append((node, name))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, ScalarNode):
            nodes[id(node)] = node
    found = [
        _Scalar(n.start_mark.index, n.end_mark.index, n, tuple(parents.get(i, ()))) for i, n in nodes.items()
    ]
    found.sort(key=lambda s: s.start)
    return found


def _fields(node: MappingNode, seen: set[int] | None = None) -> dict[str, Node]:
    """Own keys, then `<<:` merged ones (earlier sources first), own keys winning."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return {}
    seen.add(id(node))
    own: dict[str, Node] = {}
    merged: dict[str, Node] = {}
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            continue
        if key.tag == _MERGE_TAG:
            for source in value.value if isinstance(value, SequenceNode) else [value]:
                if isinstance(source, MappingNode):
                    for name, inner in _fields(source, seen).items():
                        merged.setdefault(name, inner)
        else:
            own.setdefault(str(key.value), value)
    return {**merged, **own}


def _str_field(fields: dict[str, Node], key: str) -> str | None:
    value = fields.get(key)
    return str(value.value) if isinstance(value, ScalarNode) else None


class _FileCheck:
    def __init__(self, path: str, text: str, repository: str, new_digest: str, report: Report) -> None:
        self.path = path
        self.text = text
        self.repository = repository
        self.registry, _, self.repo_path = repository.partition("/")
        self.new = new_digest
        self.report = report
        self.kind = _kind(path)
        self.line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    def line_text(self, line: int) -> str:
        start = self.line_starts[line - 1]
        end = self.line_starts[line] if line < len(self.line_starts) else len(self.text)
        return self.text[start:end]

    def fail(self, line: int, message: str) -> None:
        self.report.failures.append(Finding(self.path, line, message))

    def ignore(self, line: int, why: str) -> None:
        self.report.ignored.append(Finding(self.path, line, why))

    def mentions(self) -> list[tuple[int, str, str, re.Match[str]]]:
        """(original offset, which name, the name as written, tail match) of every mention."""
        flat, offsets = _unescape(self.text)
        needle = self.repository.rsplit("/", 1)[-1].lower()
        if needle not in flat.lower():
            return []
        patterns = [("repository", rf"(?:(?<=://)|{_BEFORE}){re.escape(self.repository)}{_AFTER}")]
        if "/" in self.repo_path:
            patterns.append(("path", rf"{_BEFORE}{re.escape(self.repo_path)}{_AFTER}"))
        found: list[tuple[int, str, str, re.Match[str]]] = []
        for which, pattern in patterns:
            for match in re.finditer(pattern, flat, re.IGNORECASE):
                tail = _PIN_TAIL_RE.match(flat, match.end())
                assert tail is not None  # every part is optional
                offset = offsets[match.start()] if offsets is not None else match.start()
                found.append((offset, which, match.group(), tail))
        return sorted(found, key=lambda item: item[0])

    def run(self) -> None:
        mentions = self.mentions()
        if not mentions:
            return
        if self.kind == "prose":
            for offset, *_ in mentions:
                self.ignore(self.line_of(offset), "documentation (Markdown, reStructuredText, AsciiDoc)")
            return
        documents = _compose(self.text, self.kind) if self.kind in ("yaml", "json") else None
        scalars = _scalars(documents) if documents is not None else None
        starts = [s.start for s in scalars] if scalars is not None else []
        for offset, which, shown, tail in mentions:
            line = self.line_of(offset)
            if tail["digest"] == self.new:
                continue  # carries the new digest
            if scalars is None:
                self.text_mention(line, shown, tail, unparsed=self.kind in ("yaml", "json"))
                continue
            index = bisect.bisect_right(starts, offset) - 1
            scalar = scalars[index] if index >= 0 and scalars[index].end > offset else None
            if scalar is None:
                self.ignore(line, "in a YAML comment")
                continue
            self.value_mention(line, which, shown, tail, scalar)

    def text_mention(self, line: int, shown: str, tail: re.Match[str], *, unparsed: bool) -> None:
        stripped = self.line_text(line).lstrip()
        if stripped.startswith("#") or (not unparsed and stripped.startswith("//")):
            self.ignore(line, "a commented-out line")
            return
        where = (
            "a YAML/JSON file that does not parse (a template?)" if unparsed else "a file bump does not edit"
        )
        if tail["digest"]:
            what = f"{shown}@{tail['digest']}, not the new digest, in {where}"
            todo = "update it by hand, or keep the pin in a YAML or JSON value that bump edits"
        else:
            what = f"names {shown} without the new digest in {where}"
            todo = (
                "pin it in a YAML or JSON value that bump edits, or, if it is not a pin, comment the line out"
            )
        self.fail(line, f"{what} — {todo}")

    def value_mention(self, line: int, which: str, shown: str, tail: re.Match[str], scalar: _Scalar) -> None:
        node = scalar.node
        block = node.style in ("|", ">")
        if block and self.line_text(line).lstrip().startswith("#"):
            self.ignore(line, "a commented-out line in a block scalar")
            return
        pinned = f"{shown}@{tail['digest']}" if tail["digest"] else shown
        if block:
            self.fail(
                line,
                f"{pinned} inside a multi-line string (`key: |`), which bump does not edit — move these values "
                "to a file of their own (a Helm values file), or update the line by hand",
            )
            return
        if tail["digest"]:
            spelled = shown not in (self.repository, self.repo_path)
            todo = (
                f"write the repository as {self.repository} (bump matches it exactly)"
                if spelled
                else f"write the image as a value of its own ({self.repository}@sha256:...)"
            )
            self.fail(
                line,
                f"{pinned}, not the new digest, in a value that bump does not edit — {todo}, or update it by hand",
            )
            return
        bare = str(node.value).strip().lower() == shown.lower()
        if not bare or not scalar.parents:
            detail = f" with tag {tail['tag']!r}" if tail["tag"] else ""
            self.fail(
                line,
                f"names {shown}{detail} without the new digest — pin it by digest ({self.repository}@sha256:... "
                "or a `digest:` field beside it), or, if it is not a pin, comment the line out",
            )
            return
        # An anchored value may be the repository of several mappings: each must carry the new digest.
        for parent, key in scalar.parents:
            if not self.field_mention(line, which, shown, _fields(parent), key):
                return

    def field_mention(self, line: int, which: str, shown: str, fields: dict[str, Node], key: str) -> bool:
        """Judge a mention that is the whole value of `key` in a mapping; False once it failed."""
        renamed = _str_field(fields, "newName")
        if key == "name" and renamed is not None and renamed.lower() != shown.lower():
            self.ignore(line, f"a kustomize images entry renamed to {renamed}")
            return True
        registry = _str_field(fields, "registry")
        if which == "path" and registry is not None and registry.lower() != self.registry.lower():
            self.ignore(line, f"beside `registry: {registry}`: another repository")
            return True
        digest = _str_field(fields, "digest")
        if digest == self.new:
            return True  # repository and digest fields: carries the new digest
        hint = f" with `registry: {self.registry}` beside it" if which == "path" and registry is None else ""
        if digest is None:
            what = f"names {shown} with no `digest:` beside it"
            todo = f"pin it by digest (a `digest:` field{hint}), or, if it is not a pin, comment the line out"
        else:
            what = f"names {shown} with `digest: {digest}` beside it, not the new digest, in a form bump does not edit"
            todo = (
                f"write it as {self.repository}@sha256:... or as repository: + digest: fields{hint}, "
                "or update it by hand"
            )
        self.fail(line, f"{what} — {todo}")
        return False


def check_tree(files: Mapping[str, bytes], repository: str, new_digest: str) -> Report:
    """Judge every mention of `repository` in `files` (path -> bytes, as they will be after the bump)."""
    report = Report()
    raw_names = [repository.lower().encode()]
    repo_path = repository.partition("/")[2]
    if "/" in repo_path:
        raw_names.append(repo_path.lower().encode())
    for path in sorted(files):
        data = files[path]
        if b"\0" in data:
            continue  # binary
        report.checked += 1
        if len(data) > SIZE_LIMIT:
            lowered = data.lower()
            if any(name in lowered for name in raw_names):
                report.failures.append(
                    Finding(
                        path,
                        1,
                        f"names {repository} but is larger than {SIZE_LIMIT // (1024 * 1024)} MiB, too large "
                        "for the bump to check — split the file, or update it by hand",
                    )
                )
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if any(name in data.lower() for name in raw_names):
                report.failures.append(
                    Finding(path, 1, f"not UTF-8 text but names {repository} — convert it to UTF-8")
                )
            continue
        _FileCheck(path, text, repository, new_digest, report).run()
    report.failures = list(dict.fromkeys(report.failures))
    return report

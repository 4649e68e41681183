"""JSON text composed into the same node graph ruamel.yaml composes from YAML, with exact source marks.

So a `.json` manifest goes through the same locator, splice and proof as a YAML file: every string is a
str ScalarNode (style '"', its value decoded exactly as `json.loads` decodes it), every object a
MappingNode, every array a SequenceNode, and each node's marks give its character span in the text.
Strict JSON (RFC 8259, as the `json` module reads it): no comments, no trailing commas; a duplicate
key is an error here (readers disagree on which one wins, so the bump would not know what it edits).
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import re
from collections.abc import Callable

from ruamel.yaml.error import StreamMark
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_TAGS = {
    "str": "tag:yaml.org,2002:str",
    "int": "tag:yaml.org,2002:int",
    "float": "tag:yaml.org,2002:float",
    "bool": "tag:yaml.org,2002:bool",
    "null": "tag:yaml.org,2002:null",
    "map": "tag:yaml.org,2002:map",
    "seq": "tag:yaml.org,2002:seq",
}
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<frac>\.[0-9]+)?(?P<exp>[eE][-+]?[0-9]+)?")
_WHITESPACE_RE = re.compile(r"[ \t\n\r]*")
_LITERALS = (("true", "bool"), ("false", "bool"), ("null", "null"))
_MAX_DEPTH = 500
# The json module's own string scanner: a string decodes here exactly as json.loads decodes it.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class JsonParseError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Composer:
    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]

    def mark(self, index: int) -> StreamMark:
        line = bisect.bisect_right(self.line_starts, index) - 1
        return StreamMark(self.name, index, line, index - self.line_starts[line])

    def fail(self, index: int, message: str) -> JsonParseError:
        return JsonParseError(self.mark(index).line + 1, message)

    def skip(self, index: int) -> int:
        match = _WHITESPACE_RE.match(self.text, index)
        assert match is not None
        return match.end()

    def value(self, index: int, depth: int) -> tuple[Node, int]:
        if depth > _MAX_DEPTH:
            raise self.fail(index, f"nested deeper than {_MAX_DEPTH} levels")
        text = self.text
        if index >= len(text):
            raise self.fail(index, "expected a value, found the end of the text")
        char = text[index]
        if char == '"':
            return self.string(index)
        if char == "{":
            return self.object(index, depth)
        if char == "[":
            return self.array(index, depth)
        for word, kind in _LITERALS:
            if text.startswith(word, index):
                end = index + len(word)
                return ScalarNode(_TAGS[kind], word, self.mark(index), self.mark(end)), end
        number = _NUMBER_RE.match(text, index)
        if number is not None:
            kind = "float" if number["frac"] or number["exp"] else "int"
            end = number.end()
            return ScalarNode(_TAGS[kind], number.group(), self.mark(index), self.mark(end)), end
        raise self.fail(index, f"unexpected character {char!r}")

    def string(self, index: int) -> tuple[ScalarNode, int]:
        try:
            value, end = _scanstring(self.text, index + 1, True)
        except json.JSONDecodeError as exc:
            raise self.fail(exc.pos, exc.msg) from None
        return ScalarNode(_TAGS["str"], value, self.mark(index), self.mark(end), style='"'), end

    def object(self, index: int, depth: int) -> tuple[MappingNode, int]:
        start = index
        pairs: list[tuple[Node, Node]] = []
        keys: set[str] = set()
        index = self.skip(index + 1)
        if self.text.startswith("}", index):
            end = index + 1
            return MappingNode(_TAGS["map"], pairs, self.mark(start), self.mark(end), flow_style=True), end
        while True:
            if not self.text.startswith('"', index):
                raise self.fail(index, "expected a string key")
            key, index = self.string(index)
            if key.value in keys:
                raise self.fail(key.start_mark.index, f"duplicate key {key.value!r}")
            keys.add(key.value)
            index = self.skip(index)
            if not self.text.startswith(":", index):
                raise self.fail(index, "expected ':' after a key")
            value, index = self.value(self.skip(index + 1), depth + 1)
            pairs.append((key, value))
            index = self.skip(index)
            if self.text.startswith(",", index):
                index = self.skip(index + 1)
                continue
            if self.text.startswith("}", index):
                end = index + 1
                return MappingNode(
                    _TAGS["map"], pairs, self.mark(start), self.mark(end), flow_style=True
                ), end
            raise self.fail(index, "expected ',' or '}' in an object")

    def array(self, index: int, depth: int) -> tuple[SequenceNode, int]:
        start = index
        items: list[Node] = []
        index = self.skip(index + 1)
        if self.text.startswith("]", index):
            end = index + 1
            return SequenceNode(_TAGS["seq"], items, self.mark(start), self.mark(end), flow_style=True), end
        while True:
            item, index = self.value(index, depth + 1)
            items.append(item)
            index = self.skip(index)
            if self.text.startswith(",", index):
                index = self.skip(index + 1)
                continue
            if self.text.startswith("]", index):
                end = index + 1
                return SequenceNode(
                    _TAGS["seq"], items, self.mark(start), self.mark(end), flow_style=True
                ), end
            raise self.fail(index, "expected ',' or ']' in an array")


def compose_json(text: str, name: str = "<json>") -> list[Node]:
    """The one document of a JSON text (an empty list for a text of only whitespace)."""
    composer = _Composer(text, name)
    index = composer.skip(1 if text.startswith("\ufeff") else 0)
    if index == len(text):
        return []
    node, index = composer.value(index, 0)
    index = composer.skip(index)
    if index != len(text):
        raise composer.fail(index, "extra data after the JSON value")
    return [node]

"""`helm-values-unknown`: the keys of our values (a values file of the tree, or an Application's inline
values) that the chart does not define, and so silently ignores.

What a chart defines is read straight from its verified package (`tarfile`, bounded: only Chart.yaml,
values.yaml and values.schema.json of the chart and of its subcharts, also packaged ones, members of at
most a few MiB): its `values.schema.json` (properties / patternProperties / additionalProperties, local
`$ref`s, `allOf`/`anyOf`/`oneOf` as alternatives) and its `values.yaml` defaults (a key is unknown where
the default is a non-empty mapping without it). With both, a key either admits is a value: a schema may
describe only some values (Bitnami's), defaults leave optional ones out. Free-form: a default `{}` or
null, a list (not descended), a schema node that says nothing of its keys, and `global`; and, following
chart authors' conventions, keys documented as comments (`# existingSecret: x`), mappings keyed by names
(a key holding `.` or `/`: `configs.cm`, annotations) and Kubernetes fields passed on whole (`affinity`,
`nodeSelector`, `*SecurityContext`, `requests`/`limits`). A key named after a subchart (`charts/<name>`,
or its Chart.yaml dependency's `alias`) is checked against that subchart, recursively; the dependencies'
`condition` paths and `tags.<tag>` are values too. What is read from a package is cached on disk by the
package's sha256 (and in memory), so a warm lint reads no package."""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from llm_platform.documents import MANIFEST_LIMITS, YamlDocument, load_yaml
from llm_platform.errors import DocumentError

_FORMAT = 5  # bump when what is cached per chart package changes
_MEMBER_LIMIT = 4 * 1024 * 1024  # bytes: a larger member of the package is not read
_MEMBERS_LIMIT = 50_000  # members of one package read at most
_NESTING_LIMIT = 4  # subchart packages (charts/*.tgz) inside packages, at most this deep
_KEY_NODES_LIMIT = 500_000  # mapping entries of one values.yaml taken into account at most
_WANTED = ("Chart.yaml", "values.yaml", "values.schema.json")
_MEMO: dict[str, dict[str, Any]] = {}


class _Free:
    """A place of the values that admits any key."""


FREE = _Free()


@dataclass(frozen=True)
class Unknown:
    path: tuple[str, ...]  # our keys down to the unknown one
    node: Any  # our key's node (positions) or None
    where: str  # where the chart's values were read, e.g. `values.yaml`
    suggestion: str | None


# Reading the package ---------------------------------------------------------------------------------


def chart_values(tgz: Path, sha256: str, cache_dir: Path | None) -> dict[str, Any]:
    """What the chart (and its subcharts) defines, from the package `tgz` (sha256 `sha256`): cached."""
    if sha256 in _MEMO:
        return _MEMO[sha256]
    cached = cache_dir / f"values-{sha256}.json" if cache_dir is not None else None
    info: dict[str, Any] | None = None
    if cached is not None:
        try:
            doc = json.loads(cached.read_text())
            if doc.get("format") == _FORMAT:
                info = doc["chart"]
        except (OSError, ValueError, KeyError, AttributeError):
            info = None
    if info is None:
        try:
            with tarfile.open(tgz, mode="r:gz") as tf:
                files = _read_package(tf, 0)
        except (OSError, tarfile.TarError, EOFError):
            files = {}
        info = _chart_info(files, (), "")
        if cached is not None:
            _store(cached, {"format": _FORMAT, "chart": info})
    _MEMO[sha256] = info
    return info


def _read_package(tf: tarfile.TarFile, depth: int) -> dict[tuple[str, ...], dict[str, bytes]]:
    """The wanted files of the chart and of each subchart, keyed by the chain of `charts/<dir>` names."""
    out: dict[tuple[str, ...], dict[str, bytes]] = {}
    for count, member in enumerate(tf):
        if count >= _MEMBERS_LIMIT:
            break
        if not member.isfile() or member.size > _MEMBER_LIMIT:
            continue
        parts = member.name.lstrip("./").split("/")
        i, chain = 1, []
        while i + 2 < len(parts) and parts[i] == "charts":
            chain.append(parts[i + 1])
            i += 2
        name = parts[-1]
        if i == len(parts) - 1 and name in _WANTED:
            data = _read_member(tf, member)
            if data is not None:
                out.setdefault(tuple(chain), {})[name] = data
        elif (
            i == len(parts) - 2 and parts[i] == "charts" and name.endswith(".tgz") and depth < _NESTING_LIMIT
        ):
            data = _read_member(tf, member)
            if data is None:
                continue
            try:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as nested:
                    inner = _read_package(nested, depth + 1)
            except (OSError, tarfile.TarError, EOFError):
                continue
            sub = name.removesuffix(".tgz")
            for rel, files in inner.items():
                out.setdefault((*chain, f"{sub}.tgz", *rel), {}).update(files)
    return out


def _read_member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | None:
    f = tf.extractfile(member)
    if f is None:
        return None
    with f:
        return f.read(_MEMBER_LIMIT + 1)[:_MEMBER_LIMIT]


def _chart_info(
    files: dict[tuple[str, ...], dict[str, bytes]], chain: tuple[str, ...], prefix: str
) -> dict[str, Any]:
    own = files.get(chain, {})
    meta = _yaml_data(own.get("Chart.yaml"))
    meta = meta if isinstance(meta, dict) else {}
    schema: Any = None
    if "values.schema.json" in own:
        try:
            schema = json.loads(own["values.schema.json"])
        except ValueError:
            schema = None
    has_schema = isinstance(schema, (dict, bool))
    info: dict[str, Any] = {
        "name": str(meta.get("name") or (chain[-1] if chain else "")),
        "prefix": prefix,
        "schema": schema if has_schema else None,
        "defaults": _key_tree(own.get("values.yaml")),
        "allowed": {},
        "subcharts": {},
    }
    # The subcharts present: charts/<dir> (unpacked) or charts/<x>.tgz (a package), by chart name.
    present: dict[str, tuple[str, ...]] = {}
    for rel in files:
        if len(rel) == len(chain) + 1 and rel[: len(chain)] == chain:
            sub_meta = _yaml_data(files[rel].get("Chart.yaml"))
            sub_name = (
                str(sub_meta.get("name")) if isinstance(sub_meta, dict) and sub_meta.get("name") else rel[-1]
            )
            present.setdefault(sub_name, rel)
    used: set[str] = set()
    for dep in meta.get("dependencies") or []:
        if not isinstance(dep, dict) or not dep.get("name"):
            continue
        dep_name = str(dep["name"])
        key = str(dep.get("alias") or dep_name)
        found = present.get(dep_name)
        if found is None:
            info["subcharts"][key] = None  # not vendored: its values cannot be known here
        else:
            used.add(dep_name)
            info["subcharts"][key] = _chart_info(files, found, f"{prefix}charts/{found[-1]}/")
        for cond in str(dep.get("condition") or "").split(","):
            if cond.strip():
                _allow(info["allowed"], cond.strip().split("."))
        for tag in dep.get("tags") or []:
            _allow(info["allowed"], ["tags", str(tag)])
    for sub_name, rel in present.items():
        if sub_name not in used and sub_name not in info["subcharts"]:
            info["subcharts"][sub_name] = _chart_info(files, rel, f"{prefix}charts/{rel[-1]}/")
    return info


def _allow(tree: dict[str, Any], path: list[str]) -> None:
    for part in path[:-1]:
        nxt = tree.get(part)
        if not isinstance(nxt, dict):
            nxt = tree[part] = {}
        tree = nxt
    if path:
        tree[path[-1]] = None  # any value


def _yaml_doc(raw: bytes | None) -> YamlDocument | None:
    """A chart file through the one bounded loader (an alias bomb in a chart is refused, not expanded)."""
    if raw is None:
        return None
    try:
        return load_yaml(raw, source="chart values", limits=MANIFEST_LIMITS, unique_keys=False)
    except DocumentError:
        return None


def _yaml_data(raw: bytes | None) -> Any:
    doc = _yaml_doc(raw)
    return doc.data if doc is not None else None


_COMMENTED_KEY = re.compile(r"^([ ]*)#([ ]*)([A-Za-z_][A-Za-z0-9_.\-]*|\"[^\"]+\"):(?:\s|$)", re.MULTILINE)
_DEPTH_LIMIT = 100


def _key_tree(raw: bytes | None) -> dict[str, Any] | None:
    """The keys of values.yaml: a non-empty mapping as {key: subtree}, anything else (free) as None.

    Conventions of chart authors count too: a key commented out where it would go (`# existingSecret: x`,
    documenting an optional value) is a value (of any shape); a mapping with a key that holds a `.` or
    `/` (`configs.cm: {exec.enabled: ...}`, annotations) is data keyed by name, and `affinity`,
    `nodeSelector`, `*SecurityContext`, `requests`/`limits` are Kubernetes fields passed on whole:
    free-form."""
    if raw is None:
        return None
    doc = _yaml_doc(raw)
    node = doc.node if doc is not None else None
    budget = [_KEY_NODES_LIMIT]
    memo: dict[int, Any] = {}
    keys: list[tuple[int, int, tuple[str, ...]]] = []  # (line, column, path) of each key reached

    def tree(n: Node | None, path: tuple[str, ...]) -> Any:
        if not isinstance(n, MappingNode) or not n.value or budget[0] <= 0 or len(path) > _DEPTH_LIMIT:
            return None
        if id(n) in memo:
            return memo[id(n)]
        out: dict[str, Any] = {}
        memo[id(n)] = out
        for k, v in n.value:
            budget[0] -= 1
            if isinstance(k, ScalarNode) and k.value == "<<":
                for merged in v.value if isinstance(v, yaml.SequenceNode) else [v]:
                    sub = tree(merged, path)
                    if isinstance(sub, dict):
                        for mk, mv in sub.items():
                            out.setdefault(mk, mv)
            elif isinstance(k, ScalarNode):
                keys.append((k.start_mark.line, k.start_mark.column, (*path, k.value)))
                out[k.value] = tree(v, (*path, k.value))
        return out or None

    root = tree(node, ())
    if not isinstance(root, dict):
        return None
    text = raw.decode("utf-8", errors="replace")
    events: list[tuple[int, int, tuple[str, ...] | None, str]] = [
        (line, col, path, "") for line, col, path in keys
    ]
    for m in _COMMENTED_KEY.finditer(text):
        key_col = len(m.group(1)) + 1 + len(m.group(2))
        events.append(
            (text.count("\n", 0, m.start()), max(len(m.group(1)), key_col - 2), None, m.group(3).strip('"'))
        )
    events.sort(key=lambda e: e[0])
    stack: list[tuple[int, tuple[str, ...]]] = []
    for _, col, path, commented in events:
        while stack and stack[-1][0] >= col:
            stack.pop()
        if path is None:
            path = (*(stack[-1][1] if stack else ()), commented)
            parent: Any = root
            for part in path[:-1]:
                parent = parent.get(part) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                parent.setdefault(commented, None)
        stack.append((col, path))
    return _data_maps_free(root, set())


# Defaults that a chart passes on as a Kubernetes field, whole: any field of it works (matched in lower case;
# `*securitycontext`: podSecurityContext, containerSecurityContext, ...), and resource names.
_KUBERNETES_FIELDS = ("affinity", "nodeselector", "requests", "limits")


def _data_maps_free(tree: dict[str, Any], seen: set[int], top: bool = True) -> dict[str, Any] | None:
    """`tree` with the mappings that are data keyed by name made free: those with a key holding a `.` or
    `/` (not at the top of the chart's values, where `grafana.ini` is one value among others), the value
    of such a key (a file's or a setting's content), and those named as a Kubernetes field."""
    if not top and any("." in k or "/" in k for k in tree):
        return None
    if id(tree) not in seen:
        seen.add(id(tree))
        for k, v in tree.items():
            lower = k.lower()
            if "." in k or "/" in k or lower in _KUBERNETES_FIELDS or lower.endswith("securitycontext"):
                tree[k] = None
            elif isinstance(v, dict):
                tree[k] = _data_maps_free(v, seen, top=False)
    return tree


def _store(path: Path, doc: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs time


# What a place of the values admits ---------------------------------------------------------------------


class _Place:
    """One view of a place of the values: `child(key)` is FREE, a _Place, or None (not admitted)."""

    where = ""  # where the chart says what this place holds ("" : it does not constrain the keys)

    def child(self, key: str) -> _Place | _Free | None:
        raise NotImplementedError

    def names(self) -> list[str]:
        return []


class _Defaults(_Place):
    def __init__(self, tree: dict[str, Any], where: str) -> None:
        self.tree, self.where = tree, where

    def child(self, key: str) -> _Place | _Free | None:
        if key not in self.tree:
            return None
        sub = self.tree[key]
        return _Defaults(sub, self.where) if isinstance(sub, dict) else FREE

    def names(self) -> list[str]:
        return list(self.tree)


class _Allowed(_Defaults):
    where = ""


class _Schema(_Place):
    def __init__(self, root: Any, node: Any, where: str) -> None:
        self.root, self.where = root, where
        self.branches = list(_branches(root, node, 0))
        self.speaks = any(_speaks(b) for b in self.branches)  # of the keys of this place

    def child(self, key: str) -> _Place | _Free | None:
        if not self.speaks:
            return FREE
        subs: list[Any] = []
        for b in self.branches:
            if not isinstance(b, dict) or not _speaks(b):
                continue  # a branch that says nothing about keys (only a $ref, a type, ...)
            props = b.get("properties")
            if isinstance(props, dict) and key in props:
                subs.append(props[key])
            for pattern, sub in (b.get("patternProperties") or {}).items():
                try:
                    if re.search(pattern, key):
                        subs.append(sub)
                except re.error:
                    subs.append(sub)
            extra = b.get("additionalProperties")
            if extra is True:
                return FREE
            if isinstance(extra, dict):
                subs.append(extra)
        if not subs:
            return None
        places: list[_Place] = [_Schema(self.root, s, self.where) for s in subs]
        if any(isinstance(p, _Schema) and not p.speaks for p in places):
            return FREE
        return places[0] if len(places) == 1 else _Union(places)

    def names(self) -> list[str]:
        out: list[str] = []
        for b in self.branches:
            if isinstance(b, dict) and isinstance(b.get("properties"), dict):
                out += [k for k in b["properties"] if k not in out]
        return out


def _speaks(b: Any) -> bool:
    """Whether a schema (branch) says which keys an object may have."""
    if b is False:
        return True
    if not isinstance(b, dict):
        return False
    return bool(b.get("properties")) or bool(b.get("patternProperties")) or "additionalProperties" in b


def _branches(root: Any, node: Any, depth: int) -> Iterator[Any]:
    """The alternatives a schema node stands for: itself, what its local `$ref` points at and the branches
    of its allOf/anyOf/oneOf (any of them admitting a key admits it: the chart's own wording varies)."""
    if depth > 32:
        return
    if not isinstance(node, dict):
        yield node
        return
    yield node
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _pointer(root, ref)
        if target is not None:
            yield from _branches(root, target, depth + 1)
    for word in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(word) or []:
            yield from _branches(root, sub, depth + 1)


def _pointer(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return None  # another document: not read here
    node = root
    for raw in [p for p in ref[1:].split("/") if p]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


class _Chart(_Place):
    """The top of a chart's values: its own (schema or defaults), its subcharts, conditions and tags."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        prefix = info.get("prefix", "")
        own: list[_Place] = []
        schema = info.get("schema")
        if schema is not None:
            own.append(_Schema(schema, schema, f"{prefix}values.schema.json"))
        if isinstance(info.get("defaults"), dict):
            own = [p for p in own if isinstance(p, _Schema) and p.speaks]  # one that says nothing: not
            own.append(_Defaults(info["defaults"], f"{prefix}values.yaml"))
        # Both, when the chart has both: a schema may describe only some values (Bitnami's), the defaults
        # may leave out optional ones. None: no defaults at all, nothing to compare with.
        self.own: _Place | None = (own[0] if len(own) == 1 else _Union(own)) if own else None
        self.where = self.own.where if self.own is not None else f"{prefix}values.yaml"

    def child(self, key: str) -> _Place | _Free | None:
        if key == "global" or self.own is None:
            return FREE
        subcharts = self.info.get("subcharts") or {}
        found: list[_Place] = []
        for place in (self.own, _Allowed(self.info.get("allowed") or {}, "")):
            sub = place.child(key)
            if sub is FREE:
                return FREE
            if isinstance(sub, _Place):
                found.append(sub)
        if key in subcharts:
            if subcharts[key] is None:
                return FREE
            found.append(_Chart(subcharts[key]))
        if not found:
            return None
        return found[0] if len(found) == 1 else _Union(found)

    def names(self) -> list[str]:
        out = self.own.names() if self.own is not None else []
        extra = [*(self.info.get("subcharts") or {}), *(self.info.get("allowed") or {})]
        return out + [n for n in extra if n not in out]


class _Union(_Place):
    def __init__(self, places: list[_Place]) -> None:
        self.places = places
        self.where = " and ".join(dict.fromkeys(p.where for p in places if p.where))

    def child(self, key: str) -> _Place | _Free | None:
        found: list[_Place] = []
        for p in self.places:
            sub = p.child(key)
            if sub is FREE:
                return FREE
            if isinstance(sub, _Place):
                found.append(sub)
        if not found:
            return None
        return found[0] if len(found) == 1 else _Union(found)

    def names(self) -> list[str]:
        out: list[str] = []
        for p in self.places:
            out += [n for n in p.names() if n not in out]
        return out


# Our values -------------------------------------------------------------------------------------------


def unknown_keys(info: dict[str, Any], values: Any) -> list[Unknown]:
    """The keys of `values` (a composed YAML node, or plain data) that the chart does not define."""
    out: list[Unknown] = []
    stack: list[tuple[_Place, Any, tuple[str, ...]]] = [(_Chart(info), values, ())]
    while stack:
        place, value, path = stack.pop()
        entries = _entries(value)
        if entries is None:
            continue
        for key, key_node, sub in entries:
            child = place.child(key)
            if child is FREE:
                continue
            if child is None:
                names = [n for n in place.names() if n != key]
                match = difflib.get_close_matches(key, names, n=1)
                where = place.where or _Chart(info).where
                out.append(Unknown((*path, key), key_node, where, match[0] if match else None))
                continue
            assert isinstance(child, _Place)
            stack.append((child, sub, (*path, key)))
    return sorted(out, key=lambda u: u.path)


def _entries(value: Any) -> list[tuple[str, Any, Any]] | None:
    """(key, key node or None, value) of a mapping, in order; None when `value` is not one."""
    if isinstance(value, MappingNode):
        out: list[tuple[str, Any, Any]] = []
        for k, v in value.value:
            if not isinstance(k, ScalarNode):
                continue
            if k.value == "<<":
                for merged in v.value if isinstance(v, yaml.SequenceNode) else [v]:
                    out += _entries(merged) or []
            else:
                out.append((k.value, k, v))
        return out
    if isinstance(value, dict):
        return [(str(k), None, v) for k, v in value.items()]
    return None

"""Schema sources: built-in kinds from kubernetes-validate's bundled strict schemas, custom resources
from CRDs (in the tree and in --crds directories). Each schema file is read once per process and each
validator is built once per (kind, version)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from packaging.version import Version
from referencing import Registry, Resource

from llm_platform.documents import MANIFEST_LIMITS, DocumentError, iter_yaml, load_json, read_bytes
from llm_platform.errors import InputError
from llm_platform.lint.structural import JsonPath, SchemaError, StructuralValidator
from llm_platform.oci import atomic_write

_BUILTIN_GROUPS = {
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "extensions",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
}
_SCHEMA_ROOT = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def is_builtin_group(group: str) -> bool:
    return group in _BUILTIN_GROUPS


def supported_versions() -> list[str]:
    out = []
    for d in _SCHEMA_ROOT.iterdir():
        m = re.fullmatch(r"v(\d+\.\d+)\.\d+-local-strict", d.name)
        if m:
            out.append(m.group(1))
    return sorted(out, key=Version)


def resolve_kubernetes_version(wanted: str) -> str:
    """The newest bundled minor version not newer than `wanted` ("1.33", "v1.33.4" ...)."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", wanted.strip())
    if not m:
        raise InputError(f"--kubernetes-version: {wanted!r} is not a version like 1.33")
    want = Version(f"{m.group(1)}.{m.group(2)}")
    usable = [v for v in supported_versions() if Version(v) <= want]
    if not usable or want > Version(supported_versions()[-1]):
        raise InputError(
            f"--kubernetes-version: {wanted} is not supported "
            f"(kubernetes-validate bundles {supported_versions()[0]}..{supported_versions()[-1]})"
        )
    return usable[-1]


_NOT_RESOURCES = {
    "APIGroup",
    "APIGroupList",
    "APIResourceList",
    "APIVersions",
    "DeleteOptions",
    "Status",
    "WatchEvent",
}


class CoreSchemas:
    """Strict JSON schemas of the built-in kinds for one Kubernetes minor version; all errors reported."""

    def __init__(self, version: str) -> None:
        self.version = version
        self._dir = _SCHEMA_ROOT / f"v{version}.0-local-strict"
        self._registry: Registry | None = None
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator | None] = {}
        self._lock = threading.Lock()

    def _file(self, group: str, version: str, kind: str) -> Path:
        prefix = f"{group.split('.')[0]}-" if group else ""
        return self._dir / f"{kind.lower()}-{prefix}{version}.json"

    def validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        key = (api_version, kind)
        with self._lock:
            if key not in self._validators:
                group, version = split_api_version(api_version)
                path = self._file(group, version, kind)
                if not is_builtin_group(group) or not path.is_file():
                    self._validators[key] = None
                else:
                    if self._registry is None:
                        defs = json.loads((self._dir / "_definitions.json").read_text())
                        self._registry = Resource.from_contents(defs) @ Registry()
                    schema = json.loads(path.read_text())
                    registry = Resource.from_contents(schema) @ self._registry
                    self._validators[key] = jsonschema.Draft202012Validator(schema, registry=registry)
            return self._validators[key]

    def api_versions(self) -> set[str]:
        """`group/version` and `group/version/Kind` of every built-in GA resource kind this version serves
        (what a default cluster's discovery reports, and what `helm template --api-versions` takes)."""
        defs = json.loads((self._dir / "_definitions.json").read_text()).get("$defs") or {}
        out: set[str] = set()
        for definition in defs.values():
            for gvk in (
                (definition.get("x-kubernetes-group-version-kind") or [])
                if isinstance(definition, dict)
                else []
            ):
                group, version, kind = gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")
                if kind in _NOT_RESOURCES or not self._file(group, version, kind).is_file():
                    continue  # meta kinds are listed under every group version, even removed ones
                if not re.fullmatch(r"v[0-9]+", version):
                    continue  # alpha, and beta APIs since 1.24, are off unless a cluster enables them
                gv = f"{group}/{version}" if group else version
                out |= {gv, f"{gv}/{kind}"}
        return out

    def validate(self, obj: dict[str, Any]) -> list[SchemaError] | None:
        validator = self.validator(str(obj.get("apiVersion")), str(obj.get("kind")))
        if validator is None:
            return None
        errors: list[SchemaError] = []
        for err in validator.iter_errors(obj):
            errors.extend(_core_error(err))
        return errors


def _core_error(err: jsonschema.ValidationError) -> list[SchemaError]:
    path: JsonPath = tuple(err.absolute_path)
    where = ".".join(str(p) for p in path) or "(root)"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extras = [k for k in err.instance if k not in allowed]
        return [
            SchemaError(
                "schema-unknown-field", (*path, k), f"unknown field {'.'.join(map(str, (*path, k)))!r}"
            )
            for k in extras
        ]
    if err.validator in ("anyOf", "oneOf") and err.context:
        best = jsonschema.exceptions.best_match(err.context)
        return [SchemaError("schema-invalid", path, f"{where}: {best.message}"[:300])]
    return [SchemaError("schema-invalid", path, f"{where}: {err.message}"[:300])]


@dataclass
class CrdVersions:
    group: str
    kind: str
    source: str
    served: dict[str, StructuralValidator] = field(default_factory=dict)


# Per-process memos: a file is indexed/parsed once however many lint runs read it (tests, bench, Dagger).
_INDEX_MEMO: dict[tuple[str, int, int], list[tuple[str, str]]] = {}
_PARSE_MEMO: dict[tuple[str, int, int], list[dict[str, Any]]] = {}


def _strip_descriptions(node: Any) -> Any:
    """CRD schemas without their prose: a quarter of the size to cache and load."""
    if isinstance(node, dict):
        return {
            k: _strip_descriptions(v)
            for k, v in node.items()
            if not (k == "description" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in node]
    return node


_GROUP_RE = re.compile(r"^  group: ['\"]?([^'\"\s]+)", re.MULTILINE)
_KIND_RE = re.compile(r"^    kind: ['\"]?([^'\"\s]+)", re.MULTILINE)


class CrdStore:
    """CRDs by (group, kind). Directories are indexed by a cheap text scan; a file is parsed only
    when one of its kinds is used, and its schemas are cached on disk (keyed by content sha256)."""

    def __init__(self, crd_dirs: list[Path], cache_dir: Path | None) -> None:
        self._files: dict[tuple[str, str], list[Path]] = {}
        self._crds: dict[tuple[str, str], CrdVersions] = {}
        self._parsed: set[Path] = set()
        self._from_tree: set[tuple[str, str]] = set()
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        known = len(_INDEX_MEMO)
        self._load_index()
        for d in crd_dirs:
            if not d.is_dir():
                raise InputError(f"--crds: {d} is not a directory")
            for path in sorted(
                p for p in d.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
            ):
                self._index(path)
        if len(_INDEX_MEMO) != known:
            self._store_index()

    # The text scan of big CRD files is most of what a warm lint would spend on them: its result is kept
    # beside the parsed schemas, by (path, mtime, size), so an unchanged file is not read at all.
    _INDEX_FILE = "crd-index.v1.json"

    def _load_index(self) -> None:
        if self._cache_dir is None:
            return
        try:
            data = json.loads((self._cache_dir / self._INDEX_FILE).read_bytes())
        except (OSError, ValueError):
            return
        if not isinstance(data, list):
            return
        for row in data:
            try:
                path, mtime, size, kinds = row
                _INDEX_MEMO.setdefault(
                    (str(path), int(mtime), int(size)), [(str(g), str(k)) for g, k in kinds]
                )
            except (TypeError, ValueError):
                continue

    def _store_index(self) -> None:
        if self._cache_dir is None:
            return
        rows = [[p, m, sz, [list(gk) for gk in kinds]] for (p, m, sz), kinds in _INDEX_MEMO.items()]
        try:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self._cache_dir / self._INDEX_FILE, json.dumps(rows[-5000:]).encode())
        except OSError:
            pass  # the cache is only an optimisation

    def _index(self, path: Path) -> None:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        kinds = _INDEX_MEMO.get(key)
        if kinds is None:
            try:
                text = read_bytes(path, MANIFEST_LIMITS).decode("utf-8", errors="replace")
            except DocumentError as exc:
                if exc.kind == "limit":
                    raise InputError(f"--crds: {exc}") from None
                return
            if "CustomResourceDefinition" not in text:
                kinds = []
            else:
                groups, names = set(_GROUP_RE.findall(text)), set(_KIND_RE.findall(text))
                if not groups or not names:  # not controller-gen layout: parse it now
                    self._parse(path, text)
                    return
                kinds = [(g, k) for g in sorted(groups) for k in sorted(names)]
            _INDEX_MEMO[key] = kinds
        for gk in kinds:
            self._files.setdefault(gk, []).append(path)

    def add(self, crd: dict[str, Any], source: str) -> None:
        """A CRD found in the linted tree itself or rendered from one of its charts (already parsed). It
        is what the cluster will serve, so it takes precedence over a --crds file of the same kind (the
        first such CRD in the tree wins)."""
        entry = _crd_entry(crd, source)
        if entry is None:
            return
        key = (entry.group, entry.kind)
        if key not in self._from_tree:
            self._from_tree.add(key)
            self._crds[key] = entry

    def _parse(self, path: Path, text: str | None = None) -> None:
        if path in self._parsed:
            return
        self._parsed.add(path)
        st = path.stat()
        memo_key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        docs = _PARSE_MEMO.get(memo_key)
        if docs is None:
            raw = read_bytes(path, MANIFEST_LIMITS) if text is None else text.encode()
            docs = self._cached(raw)
            if docs is None:
                loaded = [
                    doc.data
                    for doc in iter_yaml(raw, source=str(path), limits=MANIFEST_LIMITS)
                    if isinstance(doc.data, dict)
                ]
                docs = [_strip_descriptions(d) for d in loaded if d.get("kind") == "CustomResourceDefinition"]
                self._store_cache(raw, docs)
            _PARSE_MEMO[memo_key] = docs
        for doc in docs:
            entry = _crd_entry(doc, str(path))
            if entry is not None:
                self._crds.setdefault((entry.group, entry.kind), entry)

    def _cache_path(self, raw: bytes) -> Path | None:
        if self._cache_dir is None:
            return None
        return self._cache_dir / f"{hashlib.sha256(raw).hexdigest()}.v1.json"

    def _cached(self, raw: bytes) -> list[dict[str, Any]] | None:
        p = self._cache_path(raw)
        if p is None or not p.is_file():
            return None
        try:
            data = load_json(read_bytes(p, MANIFEST_LIMITS), source=str(p), limits=MANIFEST_LIMITS)
        except DocumentError:
            return None  # a cache entry we cannot use is parsed again from the CRD file
        return data if isinstance(data, list) else None

    def _store_cache(self, raw: bytes, docs: list[dict[str, Any]]) -> None:
        p = self._cache_path(raw)
        if p is None:
            return
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(p, json.dumps(docs).encode())
        except OSError:
            pass  # the cache is only an optimisation

    def lookup(self, group: str, kind: str) -> CrdVersions | None:
        with self._lock:
            key = (group, kind)
            if key not in self._crds:
                for path in self._files.get(key, []):
                    self._parse(path)
            return self._crds.get(key)

    def groups(self) -> set[str]:
        return {g for g, _ in self._files} | {g for g, _ in self._crds}


def _crd_entry(crd: dict[str, Any], source: str) -> CrdVersions | None:
    spec = crd.get("spec") or {}
    group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
    if not isinstance(group, str) or not isinstance(kind, str):
        return None
    entry = CrdVersions(group=group, kind=kind, source=source)
    for v in spec.get("versions") or []:
        if not isinstance(v, dict) or not v.get("served", True):
            continue
        schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        entry.served[str(v.get("name"))] = StructuralValidator(schema)
    return entry

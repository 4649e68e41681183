"""`cluster secrets`: the secret values an environment needs, learnt from the tree itself, and creating
the missing ones in the backend of the store its ExternalSecrets read.

There is no second list. `environment_objects` renders what Argo CD applies for an environment (the root
Application `gitops/bootstrap/root-<env>.yaml`, the Applications it reaches, and the kustomize or
directory sources of this repository they point at); `required_secrets` reads the ExternalSecrets among
those objects (`spec.data[].remoteRef.key`, `spec.dataFrom[].extract.key`) and the (Cluster)SecretStore
each references, and says per remote key which store and provider hold it, who uses it and what shape its
value must have (`SHAPES`, the one place those rules live). `plan` decides per key: create, keep or
rotate; `gsm.apply` carries a plan out on Google Secret Manager.

Values never appear in a log line, an error, a repr or a result: they travel as `SecretStr`, excluded
from every dump; results list keys only.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import os
import re
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from llm_platform.documents import MANIFEST_LIMITS, Limits, iter_yaml, read_bytes
from llm_platform.errors import DocumentError, InputError, ToolError
from llm_platform.logs import get_logger

log = get_logger("cluster.secrets")

SECRET_ENV_PREFIX = "LLM_PLATFORM_SECRET_"
BOOTSTRAP_DIR = Path("gitops/bootstrap")
ESO_GROUP = "external-secrets.io"
# Google Secret Manager holds at most 64 KiB per version.
MAX_VALUE_BYTES = 64 * 1024
_VALUE_LIMITS = Limits(max_bytes=MAX_VALUE_BYTES, max_depth=1, max_nodes=0, max_aliases=0)
_TEMPLATE_REF = re.compile(r"\{\{[^}]*?\.([A-Za-z_][A-Za-z0-9_]*)[^}]*\}\}")


# -- shapes: what each value must look like ------------------------------------------------------------


class Generator(StrEnum):
    """How a value is generated (`secrets` module, the OS's CSPRNG)."""

    SK_PREFIXED = "sk-prefixed"  # "sk-" + token_urlsafe(32): 256 random bits
    URLSAFE = "urlsafe"  # token_urlsafe(32): 43 characters, 256 random bits
    ALPHANUMERIC = "alphanumeric"  # 32 characters of [A-Za-z0-9]: ~190 random bits
    COOKIE_SECRET = "cookie-secret"  # token_urlsafe(24): exactly 32 characters (32 bytes)


class Shape(BaseModel):
    """What the value of one remote key must look like, whether it can be generated, and what to know
    before rotating it. `generator` None: it cannot be generated and must be given (`how_to_give`)."""

    name: str
    rule: str  # the constraint, for people
    generator: Generator | None
    how_to_give: str | None = None  # where a value that cannot be generated comes from
    rotate_warning: str | None = None  # what a rotation breaks, said when --rotate names the key
    note: str | None = None  # what to do once the value exists

    def check(self, key: str, value: str, source: str) -> None:
        """Refuse a given value that does not fit; the error names the key and its source, never the value."""
        problem = _problem(self, value)
        if problem:
            raise InputError(f"{key} (from {source}): {problem}")


# The rules, by remote key name (globs, first match wins). Why each:
# - litellm-master-key: LiteLLM refuses a master key that does not start with "sk-".
# - litellm-salt-key: LiteLLM encrypts the provider credentials it stores with it; a new salt makes them
#   unreadable, so it is generated once and rotated only when --rotate names it.
# - litellm-open-webui-key: Open WebUI's LiteLLM virtual key; LiteLLM requires virtual keys to start with
#   "sk-", and accepts a value chosen by the caller (`POST /key/generate` with `"key"`), so it is generated
#   here and registered in LiteLLM once LiteLLM runs.
# - *-db-password: the LiteLLM DATABASE_URL is built by $(VAR) expansion without URL escaping, so only
#   characters that need no escaping in a URL: letters and digits.
# - *-cookie-secret: oauth2-proxy takes a cookie secret of 16, 24 or 32 bytes (raw, or base64url of that
#   many bytes); generated as exactly 32 characters of base64url (32 bytes; oauth2-proxy decodes it to 24
#   random bytes, an AES-192 key).
# - oauth2-proxy-client-secret: shared by Dex and oauth2-proxy (both read this key): any random value.
# - dex-google-*: the OAuth client of an external provider (Google): only Google issues it.
# - anything else: not known, so not guessed (it might be an external credential): it must be given.
SHAPES: tuple[tuple[str, Shape], ...] = (
    (
        "litellm-master-key",
        Shape(
            name="litellm master key",
            rule='must start with "sk-" (LiteLLM requires it)',
            generator=Generator.SK_PREFIXED,
            rotate_warning="clients using the master key must switch to the new one",
        ),
    ),
    (
        "litellm-salt-key",
        Shape(
            name="litellm salt key",
            rule="any random value; must never change once LiteLLM has stored credentials",
            generator=Generator.URLSAFE,
            rotate_warning="LiteLLM can no longer decrypt the provider credentials it stored with the old salt",
        ),
    ),
    (
        "litellm-open-webui-key",
        Shape(
            name="litellm virtual key",
            rule='must start with "sk-" (LiteLLM virtual keys do)',
            generator=Generator.SK_PREFIXED,
            note='register it in LiteLLM once it runs: POST /key/generate with {"key": <this value>} '
            "(read it with `gcloud secrets versions access latest --secret litellm-open-webui-key --project PROJECT`)",
            rotate_warning="register the new value in LiteLLM (POST /key/generate) and delete the old key",
        ),
    ),
    (
        "*-db-password",
        Shape(
            name="database password",
            rule="letters and digits only (DATABASE_URL is built by $(VAR) expansion, without URL escaping)",
            generator=Generator.ALPHANUMERIC,
            rotate_warning="Postgres keeps the password it was initialised with: change it there too "
            "(ALTER USER ... PASSWORD), or LiteLLM cannot connect",
        ),
    ),
    (
        "*-cookie-secret",
        Shape(
            name="oauth2-proxy cookie secret",
            rule="16, 24 or 32 bytes, or base64url of 16, 24 or 32 bytes (oauth2-proxy accepts only those)",
            generator=Generator.COOKIE_SECRET,
            rotate_warning="every signed-in user is signed out",
        ),
    ),
    (
        "oauth2-proxy-client-secret",
        Shape(
            name="oauth2-proxy client secret (Dex <-> oauth2-proxy)",
            rule="any random value (Dex and oauth2-proxy both read this key)",
            generator=Generator.URLSAFE,
        ),
    ),
    (
        "dex-google-client-*",
        Shape(
            name="Google OAuth client",
            rule="issued by Google",
            generator=None,
            how_to_give="create an OAuth client (type: Web application, redirect URI https://<dex host>/callback) "
            "in the Google Cloud console, APIs & Services > Credentials",
        ),
    ),
)
UNKNOWN_SHAPE = Shape(
    name="unknown",
    rule="no rule in llm_platform.cluster.secrets.SHAPES knows this key: it is not generated",
    generator=None,
    how_to_give="give its value, or add a rule for it to SHAPES",
)


def shape_for(key: str) -> Shape:
    """The shape of the value of remote key `key` (the first matching rule of `SHAPES`)."""
    return next((shape for pattern, shape in SHAPES if fnmatch.fnmatchcase(key, pattern)), UNKNOWN_SHAPE)


_ALNUM = string.ascii_letters + string.digits
_GENERATORS: dict[Generator, Callable[[], str]] = {
    Generator.SK_PREFIXED: lambda: "sk-" + secrets.token_urlsafe(32),
    Generator.URLSAFE: lambda: secrets.token_urlsafe(32),
    Generator.ALPHANUMERIC: lambda: "".join(secrets.choice(_ALNUM) for _ in range(32)),
    Generator.COOKIE_SECRET: lambda: secrets.token_urlsafe(24),
}


def _cookie_secret_ok(value: str) -> bool:
    if len(value.encode()) in (16, 24, 32):
        return True
    try:
        decoded = base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        return False
    return len(decoded) in (16, 24, 32)


def _problem(shape: Shape, value: str) -> str | None:
    """Why `value` does not fit `shape` (never quoting it), or None."""
    if not value:
        return "empty"
    if value != value.strip() or "\x00" in value:
        return "has leading or trailing white space or a NUL byte"
    if shape.generator is Generator.SK_PREFIXED and not value.startswith("sk-"):
        return f"{shape.rule}; the value given does not"
    if shape.generator is Generator.ALPHANUMERIC and not (value.isascii() and value.isalnum()):
        return f"{shape.rule}; the value given has other characters"
    if shape.generator is Generator.COOKIE_SECRET and not _cookie_secret_ok(value):
        return f"{shape.rule}; the value given is {len(value.encode())} bytes"
    return None


def env_var_for(key: str) -> str:
    """The variable that gives the value of `key`: LLM_PLATFORM_SECRET_<KEY upper, - and . as _>."""
    return SECRET_ENV_PREFIX + key.upper().replace("-", "_").replace(".", "_")


# -- what the tree needs ---------------------------------------------------------------------------------


class ProviderKind(StrEnum):
    GCPSM = "gcpsm"
    FAKE = "fake"
    OTHER = "other"


class SecretUse(BaseModel):
    """One ExternalSecret entry that reads the key, and the target Secret keys it ends up in."""

    external_secret: str  # namespace/name
    target: str  # namespace/name of the Secret it writes
    target_keys: list[str]  # keys of that Secret holding the value ([] for dataFrom: all of them)
    property: str | None = None  # remoteRef.property: the value is a JSON object
    via: Literal["data", "dataFrom"] = "data"


class RequiredSecret(BaseModel):
    """One remote key of one store: what must exist in the store's backend."""

    key: str
    store_kind: str  # ClusterSecretStore | SecretStore
    store_name: str  # for a SecretStore: namespace/name
    provider: ProviderKind
    provider_name: str  # the provider's own field name (gcpsm, fake, aws, vault, ...)
    project_id: str | None = None  # gcpsm: spec.provider.gcpsm.projectID
    in_fake_store: bool | None = None  # fake: whether spec.provider.fake.data holds the key
    used_by: list[SecretUse]
    shape: Shape

    @property
    def structured(self) -> bool:
        """The value is a JSON object (read by property or extracted whole): no single value fits."""
        return any(use.property or use.via == "dataFrom" for use in self.used_by)


def _ident(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _qualified(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _is_eso(obj: Mapping[str, Any], kind: str) -> bool:
    return obj.get("kind") == kind and str(obj.get("apiVersion", "")).startswith(f"{ESO_GROUP}/")


def _target_keys(es: Mapping[str, Any], secret_key: str) -> list[str]:
    """The target Secret's keys that hold `secret_key`: its template's keys that reference `.secretKey`,
    else the key itself (no template data, or a template that merges the data in)."""
    template = (es.get("spec") or {}).get("target", {}).get("template") or {}
    data = template.get("data") if isinstance(template, dict) else None
    if not isinstance(data, dict) or not data:
        return [secret_key]
    keys = [k for k, v in data.items() if isinstance(v, str) and secret_key in _TEMPLATE_REF.findall(v)]
    merge = template.get("mergePolicy") == "Merge"
    return sorted(keys + ([secret_key] if merge else []))


def required_secrets(objects: Iterable[Mapping[str, Any]]) -> list[RequiredSecret]:
    """Every remote key the ExternalSecrets among `objects` read, with the store that holds it (from the same
    `objects`), sorted by store and key. An ExternalSecret naming a store that is not there is an error."""
    objects = list(objects)
    stores: dict[tuple[str, str], Mapping[str, Any]] = {}
    for obj in objects:
        for kind in ("ClusterSecretStore", "SecretStore"):
            if _is_eso(obj, kind):
                namespace, name = _ident(obj)
                stores[(kind, _qualified(namespace, name) if kind == "SecretStore" else name)] = obj
    found: dict[tuple[str, str, str], RequiredSecret] = {}
    for es in objects:
        if not _is_eso(es, "ExternalSecret"):
            continue
        namespace, name = _ident(es)
        spec = es.get("spec") or {}
        default_ref = spec.get("secretStoreRef") or {}
        target_name = str((spec.get("target") or {}).get("name") or name)
        entries: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = [
            ("data", item, item.get("remoteRef") or {})
            for item in spec.get("data") or []
            if isinstance(item, dict)
        ]
        entries += [
            ("dataFrom", item, item.get("extract") or {})
            for item in spec.get("dataFrom") or []
            if isinstance(item, dict) and isinstance(item.get("extract"), dict)
        ]
        for via, item, ref in entries:
            key = ref.get("key")
            if not isinstance(key, str) or not key:
                continue
            store_ref = ((item.get("sourceRef") or {}).get("storeRef")) or default_ref
            store_kind = str(store_ref.get("kind") or "SecretStore")
            store_name = str(store_ref.get("name") or "")
            if store_kind == "SecretStore":
                store_name = _qualified(namespace, store_name)
            store = stores.get((store_kind, store_name))
            if store is None:
                raise InputError(
                    f"ExternalSecret {_qualified(namespace, name)} reads {key!r} from {store_kind} {store_name}, "
                    "which the environment does not define"
                )
            required = found.get((store_kind, store_name, key))
            if required is None:
                required = found[(store_kind, store_name, key)] = _required(
                    key, store_kind, store_name, store
                )
            secret_key = str(item.get("secretKey") or "") if via == "data" else ""
            required.used_by.append(
                SecretUse(
                    external_secret=_qualified(namespace, name),
                    target=_qualified(namespace, target_name),
                    target_keys=_target_keys(es, secret_key) if via == "data" else [],
                    property=str(ref["property"]) if ref.get("property") else None,
                    via=via,  # type: ignore[arg-type]
                )
            )
    return [found[k] for k in sorted(found)]


def _required(key: str, store_kind: str, store_name: str, store: Mapping[str, Any]) -> RequiredSecret:
    provider = (store.get("spec") or {}).get("provider") or {}
    provider_name = next(iter(provider), "") if isinstance(provider, dict) and len(provider) == 1 else ""
    config = provider.get(provider_name) or {} if provider_name else {}
    kind = {"gcpsm": ProviderKind.GCPSM, "fake": ProviderKind.FAKE}.get(provider_name, ProviderKind.OTHER)
    project_id = str(config.get("projectID") or "") or None if kind is ProviderKind.GCPSM else None
    if kind is ProviderKind.GCPSM and project_id is None:
        raise InputError(f"{store_kind} {store_name}: the gcpsm provider names no projectID")
    in_fake = None
    if kind is ProviderKind.FAKE:
        in_fake = any(isinstance(d, dict) and d.get("key") == key for d in config.get("data") or [])
    return RequiredSecret(
        key=key,
        store_kind=store_kind,
        store_name=store_name,
        provider=kind,
        provider_name=provider_name or "?",
        project_id=project_id,
        in_fake_store=in_fake,
        used_by=[],
        shape=shape_for(key),
    )


# -- the environment's objects, as Argo CD applies them ---------------------------------------------------

_CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "CustomResourceDefinition",
    "APIService",
    "StorageClass",
    "PriorityClass",
}


def _yaml_objects(text: bytes, source: str, limits: Limits) -> list[dict[str, Any]]:
    try:
        return [d.data for d in iter_yaml(text, source=source, limits=limits) if isinstance(d.data, dict)]
    except DocumentError as exc:
        raise InputError(str(exc)) from None


def _directory_objects(directory: Path, recurse: bool, repo_root: Path) -> list[dict[str, Any]]:
    """What Argo CD applies from a plain directory source: its .yaml/.yml/.json files (sub-directories only
    with `directory.recurse`)."""
    files = sorted(directory.rglob("*") if recurse else directory.iterdir())
    out: list[dict[str, Any]] = []
    for path in files:
        if path.is_file() and path.suffix in (".yaml", ".yml", ".json"):
            display = _display(path, repo_root)
            out += _yaml_objects(read_bytes(path, MANIFEST_LIMITS, source=display), display, MANIFEST_LIMITS)
    return out


def sources_of(app: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = app.get("spec") or {}
    if isinstance(spec.get("sources"), list):
        return [s for s in spec["sources"] if isinstance(s, dict)]
    return [spec["source"]] if isinstance(spec.get("source"), dict) else []


def is_application(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Application" and str(obj.get("apiVersion", "")).startswith("argoproj.io/")


def environment_objects(repo_root: Path, env: str) -> list[dict[str, Any]]:
    """The objects Argo CD applies for `env` from this repository: the root Application
    (`gitops/bootstrap/root-<env>.yaml`), then, Application by Application, what each source of this
    repository (the root's repoURL) with a `path:` renders: a kustomization through the linter's renderer
    (`kubectl kustomize` with the lint config's build options), a plain directory as Argo CD reads it. An
    object without a namespace gets its Application's destination namespace, as Argo CD gives it. Helm
    chart sources are not rendered: none of the tree's charts defines secret stores or ExternalSecrets."""
    from llm_platform.lint.argocd import normalise_repo_url
    from llm_platform.lint.config import load_config
    from llm_platform.lint.render import KUSTOMIZATION_NAMES, Renderer, real_path

    repo_root = real_path(repo_root)
    root_file = repo_root / BOOTSTRAP_DIR / f"root-{env}.yaml"
    if not root_file.is_file():
        known = sorted(p.stem.removeprefix("root-") for p in (repo_root / BOOTSTRAP_DIR).glob("root-*.yaml"))
        raise InputError(
            f"--env {env}: no root Application {BOOTSTRAP_DIR}/root-{env}.yaml "
            f"(environments: {', '.join(known) or 'none'})"
        )
    display = str(BOOTSTRAP_DIR / root_file.name)
    roots = [
        o
        for o in _yaml_objects(
            read_bytes(root_file, MANIFEST_LIMITS, source=display), display, MANIFEST_LIMITS
        )
        if is_application(o)
    ]
    if not roots:
        raise InputError(f"{display}: no Argo CD Application in it")
    ours = {
        normalise_repo_url(str(s.get("repoURL", ""))) for o in roots for s in sources_of(o) if "path" in s
    }
    lint_config = repo_root / "gitops" / "lint.yaml"
    options = load_config(lint_config).kustomize_build_options if lint_config.is_file() else []
    renderer = Renderer(options)
    objects: list[dict[str, Any]] = []
    seen: set[tuple[Path, str]] = set()
    pending = list(roots)
    try:
        while pending:
            level, pending = pending, []
            jobs: list[tuple[Mapping[str, Any], Path, Mapping[str, Any]]] = []
            for app in level:
                for source in sources_of(app):
                    if normalise_repo_url(str(source.get("repoURL", ""))) not in ours or "path" not in source:
                        continue
                    directory = real_path(repo_root / str(source["path"]))
                    namespace = str(((app.get("spec") or {}).get("destination") or {}).get("namespace") or "")
                    if (directory, namespace) in seen:
                        continue
                    seen.add((directory, namespace))
                    if not directory.is_dir():
                        raise InputError(
                            f"Application {_ident(app)[1]}: source path {source['path']} is not a directory"
                        )
                    jobs.append((app, directory, source))
            renderer.start([d for _, d, _ in jobs if any((d / n).is_file() for n in KUSTOMIZATION_NAMES)])
            rendered = renderer.results()
            for owner, directory, source in jobs:
                if directory in rendered:
                    result = rendered[directory]
                    if result.error is not None:
                        raise ToolError(f"kustomize build {_display(directory, repo_root)}: {result.error}")
                    docs = result.objects
                else:
                    recurse = bool((source.get("directory") or {}).get("recurse"))
                    docs = _directory_objects(directory, recurse, repo_root)
                namespace = str(((owner.get("spec") or {}).get("destination") or {}).get("namespace") or "")
                for doc in docs:
                    doc = _with_namespace(doc, namespace)
                    objects.append(doc)
                    if is_application(doc):
                        pending.append(doc)
    finally:
        renderer.close()
    log.debug("environment %s: %d object(s) from this repository's sources", env, len(objects))
    return objects


def _display(path: Path, repo_root: Path) -> str:
    try:
        return str(path.relative_to(repo_root))
    except ValueError:
        return str(path)


def _with_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    kind = str(obj.get("kind") or "")
    meta = obj.get("metadata")
    if not namespace or not isinstance(meta, dict) or meta.get("namespace"):
        return obj
    if kind.startswith("Cluster") or kind in _CLUSTER_SCOPED_KINDS or kind.endswith("Class"):
        return obj
    return {**obj, "metadata": {**meta, "namespace": namespace}}


# -- the plan: create, keep, rotate -------------------------------------------------------------------------

Action = Literal["create", "keep", "rotate", "provided", "unsupported"]
Source = Literal["generated", "file", "env"]


class KeyPlan(BaseModel):
    """What happens to one remote key. `value` (create and rotate only) is never dumped or shown."""

    key: str
    action: Action
    store: str  # Kind/name
    provider: ProviderKind
    project_id: str | None = None
    source: Source | None = None  # where the value comes from (create, rotate)
    used_by: list[str] = Field(default_factory=list)  # ExternalSecrets (namespace/name)
    notes: list[str] = Field(default_factory=list)
    value: SecretStr | None = Field(default=None, exclude=True, repr=False)


class SecretsPlan(BaseModel):
    keys: list[KeyPlan]
    notes: list[str] = Field(default_factory=list)

    def with_action(self, action: Action) -> list[str]:
        return [k.key for k in self.keys if k.action == action]

    @property
    def nothing_to_create(self) -> bool:
        return not any(k.action in ("create", "rotate") for k in self.keys)


class SecretsResult(BaseModel):
    """What `apply` did, by key: never a value."""

    step: str = "secrets"
    created: list[str] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)
    rotated: list[str] = Field(default_factory=list)
    provided: list[str] = Field(default_factory=list)  # by a fake store's values in git: nothing to create
    unsupported: list[str] = Field(default_factory=list)  # in a provider we cannot write to
    projects: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    dry_run: bool = False


def parse_from_file(entries: Iterable[str]) -> dict[str, Path]:
    """`--from-file KEY=PATH` entries as {key: path}; a malformed or repeated entry is an error."""
    out: dict[str, Path] = {}
    for entry in entries:
        key, sep, path = entry.partition("=")
        key = key.strip()
        if not sep or not key or not path:
            raise InputError(f"--from-file {entry.partition('=')[0]!r}...: expected KEY=PATH")
        if key in out:
            raise InputError(f"--from-file {key}: given twice")
        out[key] = Path(path)
    return out


def _given(
    key: str, from_files: Mapping[str, Path], environ: Mapping[str, str]
) -> tuple[str, Source, str] | None:
    """(value, source kind, source for messages) of a value given for `key`, or None."""
    if key in from_files:
        path = from_files[key]
        where = f"--from-file {key}={path}"
        try:
            data = read_bytes(path, _VALUE_LIMITS, source=str(path))
        except DocumentError as exc:
            raise InputError(f"--from-file {key}: {exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{where}: not UTF-8 text") from None
        return text.removesuffix("\n").removesuffix("\r"), "file", where
    var = env_var_for(key)
    if var in environ:
        text = environ[var]
        if len(text.encode()) > MAX_VALUE_BYTES:
            raise InputError(f"${var}: longer than {MAX_VALUE_BYTES} bytes (Secret Manager's limit)")
        return text, "env", f"${var}"
    return None


def _value_for(
    required: RequiredSecret, from_files: Mapping[str, Path], environ: Mapping[str, str]
) -> tuple[SecretStr, Source]:
    """The value to store for `required`: given (--from-file, then $LLM_PLATFORM_SECRET_...), else generated."""
    key, shape = required.key, required.shape
    given = _given(key, from_files, environ)
    if given is not None:
        text, source, where = given
        shape.check(key, text, where)
        return SecretStr(text), source
    why = shape.rule
    if required.structured:
        why = (
            "its value is a JSON object (read "
            + ("by property" if any(u.property for u in required.used_by) else "whole, by dataFrom")
            + ")"
        )
    elif shape.generator is not None:
        return SecretStr(_GENERATORS[shape.generator]()), "generated"
    how = f"; {shape.how_to_give}" if shape.how_to_give and not required.structured else ""
    raise InputError(
        f"{key}: cannot be generated ({why}){how}: give it with --from-file {key}=PATH or ${env_var_for(key)}"
    )


def plan(
    required: list[RequiredSecret],
    existing: set[str],
    rotate: set[str],
    *,
    from_files: Mapping[str, Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> SecretsPlan:
    """Per required key: `create` (missing from the backend), `keep` (there: never touched unless `rotate`
    names it), `rotate` (named by --rotate: a new version), `provided` (a fake store: the values are in git)
    or `unsupported` (a provider this cannot write). `existing`: the keys that have a value in the backend.
    Values for create/rotate come from `from_files` (--from-file), then `environ` ($LLM_PLATFORM_SECRET_...),
    else are generated when the key's shape allows; otherwise an error names the key and both ways to give it.
    A --rotate or --from-file name that no ExternalSecret reads is an error."""
    from_files = dict(from_files or {})
    environ = dict(os.environ) if environ is None else environ
    known = {r.key for r in required}
    for what, names in (("--rotate", rotate), ("--from-file", set(from_files))):
        unknown = sorted(names - known)
        if unknown:
            raise InputError(
                f"{what} {', '.join(unknown)}: no ExternalSecret of this environment reads "
                f"{'it' if len(unknown) == 1 else 'them'} (known keys: {', '.join(sorted(known)) or 'none'})"
            )
    keys: list[KeyPlan] = []
    notes: list[str] = []
    problems: list[str] = []  # every key without a usable value, reported together
    for req in required:
        entry = KeyPlan(
            key=req.key,
            action="keep",
            store=f"{req.store_kind}/{req.store_name}",
            provider=req.provider,
            project_id=req.project_id,
            used_by=sorted({u.external_secret for u in req.used_by}),
        )
        if req.provider is ProviderKind.FAKE:
            if not req.in_fake_store:
                raise InputError(
                    f"{entry.store} (fake provider) has no value for {req.key!r}, which "
                    f"{', '.join(entry.used_by)} read(s): add it to spec.provider.fake.data"
                )
            entry.action = "provided"
            if req.key in rotate:
                entry.notes.append("a fake store's values live in git: change them there")
        elif req.provider is ProviderKind.OTHER:
            entry.action = "unsupported"
            entry.notes.append(
                f"provider {req.provider_name}: only gcpsm values are created here; create it yourself"
            )
        elif req.key in rotate or req.key not in existing:
            entry.action = "rotate" if req.key in existing else "create"
            try:
                entry.value, entry.source = _value_for(req, from_files, environ)
            except InputError as exc:
                problems.append(exc.message)
                continue
            if entry.action == "rotate" and req.shape.rotate_warning:
                entry.notes.append(f"rotating: {req.shape.rotate_warning}")
            if entry.action == "rotate":
                entry.notes.append(
                    "ExternalSecrets pick the new version up at their next refresh (refreshInterval)"
                )
            if req.shape.note:
                entry.notes.append(req.shape.note)
        elif req.key in from_files or env_var_for(req.key) in environ:
            entry.notes.append(
                f"a value was given but {req.key} exists: kept (--rotate {req.key} replaces it)"
            )
        keys.append(entry)
    if problems:
        raise InputError("; ".join(problems))
    if required and all(k.action == "provided" for k in keys):
        stores = sorted({k.store for k in keys})
        notes.append(
            f"{', '.join(stores)} use(s) the fake provider: every value is a public placeholder in git, "
            "nothing to create"
        )
    return SecretsPlan(keys=keys, notes=notes)


def result_of(plan_: SecretsPlan, *, dry_run: bool = False) -> SecretsResult:
    """The result `apply` reports for `plan_` once carried out (or, with `dry_run`, would report)."""
    return SecretsResult(
        created=plan_.with_action("create"),
        kept=plan_.with_action("keep"),
        rotated=plan_.with_action("rotate"),
        provided=plan_.with_action("provided"),
        unsupported=plan_.with_action("unsupported"),
        projects=sorted({k.project_id for k in plan_.keys if k.project_id}),
        notes=plan_.notes + [f"{k.key}: {n}" for k in plan_.keys for n in k.notes],
        dry_run=dry_run,
    )


__all__ = [
    "SHAPES",
    "Generator",
    "KeyPlan",
    "ProviderKind",
    "RequiredSecret",
    "SecretUse",
    "SecretsPlan",
    "SecretsResult",
    "Shape",
    "env_var_for",
    "environment_objects",
    "parse_from_file",
    "plan",
    "required_secrets",
    "result_of",
    "shape_for",
]


def run_secrets(
    repo_root: Path,
    env: str,
    rotate: Iterable[str] = (),
    from_file: Iterable[str] = (),
    *,
    dry_run: bool = False,
) -> SecretsResult:
    """`cluster secrets`: learn what `env` needs from the tree, ask Secret Manager what exists (gcpsm
    stores, not on a dry run), plan, and create what is missing."""
    from llm_platform.cluster import gsm

    required = required_secrets(environment_objects(repo_root, env))
    needs_gsm = any(r.provider is ProviderKind.GCPSM for r in required)
    client = gsm.SecretManagerClient.from_environment() if needs_gsm and not dry_run else None
    try:
        existing = gsm.existing_for(required, client) if client is not None else set()
        todo = plan(required, existing, set(rotate), from_files=parse_from_file(from_file))
        if dry_run or client is None or todo.nothing_to_create:
            return result_of(todo, dry_run=dry_run)
        return gsm.apply(todo, client)
    finally:
        if client is not None:
            client.close()

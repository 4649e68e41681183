"""`cluster status`: where every Argo CD Application stands, read from the Application objects alone.

The fields read are those of the Application CRD that the argo-cd chart 9.5.21 installs (Argo CD v3.4;
`llm-platform crds sync` renders it into the cache as `argo-cd/9.5.21/crds.yaml`, see
`.spec.versions[0].schema.openAPIV3Schema.properties.status`) and Argo CD's documentation of them:

- `status.sync.status`: `Synced`, `OutOfSync` or `Unknown`; `status.sync.revision`.
- `status.health.status`: `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing` or `Unknown`.
  `status.health.message` is deprecated for Applications (the CRD says "not used"); it is read last.
- `status.conditions[]`: `{type, message, lastTransitionTime}`; a type ending in `Error` is an error
  (`ComparisonError`, `SyncError`, `InvalidSpecError`, ...), the others are warnings (as Argo CD's own
  `ApplicationCondition.IsError`).
- `status.operationState`: the last (or running) operation: `phase` `Running`, `Succeeded`, `Failed`,
  `Error` or `Terminating`, its `message`, and `syncResult.resources[]` `{group, version, kind,
  namespace, name, status Synced|SyncFailed|Pruned|PruneSkipped, message, hookPhase}`.
- `status.resources[]`: `{group, version, kind, namespace, name, status, health {status, message}}`.
  Since v3.0 Argo CD keeps resource health in its resource tree by default
  (`status.resourceHealthSource: appTree`) and `health` is absent here; `failures` says so.

Nothing here talks to a cluster but through `kube.Kube` (list and get). Every value printed is cut
(`documents.cut`): a 5000-character message never reaches the terminal in full.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict

from llm_platform.cluster.kube import Kube
from llm_platform.documents import cut

APPLICATION_API = "argoproj.io/v1alpha1"
APPLICATION_KIND = "Application"
APPLICATION_NAMESPACE = "argocd"
ROOT_NAME = "root"  # metadata.name of gitops/bootstrap/root-<env>.yaml
WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"

LINE_WIDTH = 120  # the table's lines, and progress lines
FAILURE_WIDTH = 300  # one line of `failures`
MESSAGE_WIDTH = 500  # AppRow.message (the table cuts it further)
FAILURES_PER_APP = 20  # further lines of one Application are counted, not printed

_FAILED_PHASES = ("Failed", "Error")
_FAILED_RESULTS = ("SyncFailed",)
_FAILED_HOOK_PHASES = ("Failed", "Error")


class AppRow(BaseModel):
    """One Application: its wave (the sync-wave annotation, 0 when absent or not an integer, as Argo CD
    reads it), sync and health status (`Unknown` before Argo CD wrote any), and the most useful message."""

    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str
    wave: int = 0
    sync: str = "Unknown"
    health: str = "Unknown"
    message: str = ""
    done: bool = False  # Synced and Healthy

    @property
    def state(self) -> str:
        return f"{self.sync}/{self.health}"


class Counts(BaseModel):
    total: int = 0
    done: int = 0
    sync: dict[str, int] = {}  # status -> how many Applications
    health: dict[str, int] = {}

    def line(self) -> str:
        """`12 Applications, 10 done; sync: 11 Synced, 1 OutOfSync; health: 10 Healthy, 2 Progressing`."""
        parts = [f"{self.total} Application{'' if self.total == 1 else 's'}, {self.done} done"]
        for what, counts in (("sync", self.sync), ("health", self.health)):
            if counts:
                parts.append(f"{what}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        return "; ".join(parts)


class Overview(BaseModel):
    """Every Application of `namespace` (None: all namespaces), sorted by wave then name.

    `all_done`: there is at least one Application, the root among them (when `root` is set), and all are
    Synced and Healthy. A missing root or no Application at all is a state (`note` says which), not an
    error."""

    namespace: str | None = APPLICATION_NAMESPACE
    root: str | None = ROOT_NAME
    rows: list[AppRow] = []
    root_found: bool = False
    all_done: bool = False
    counts: Counts = Counts()

    @property
    def pending(self) -> list[AppRow]:
        return [r for r in self.rows if not r.done]

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        return frozenset((r.namespace, r.name) for r in self.rows)

    @property
    def note(self) -> str:
        """Why nothing can be done yet: no Applications, or no root; empty otherwise."""
        where = f"namespace {self.namespace}" if self.namespace else "any namespace"
        if not self.rows:
            return f"no Argo CD Applications in {where}: the root Application has not been applied"
        if self.root and not self.root_found:
            return (
                f"the root Application {self.namespace or APPLICATION_NAMESPACE}/{self.root} does not exist"
            )
        return ""


def overview(
    kube: Kube, namespace: str | None = APPLICATION_NAMESPACE, root: str | None = ROOT_NAME
) -> Overview:
    """List the Applications (one `list_objects` call) and summarise them."""
    apps = [a for a in kube.list_objects(APPLICATION_API, APPLICATION_KIND, namespace) if isinstance(a, dict)]
    return summarise(apps, namespace=namespace, root=root)


def summarise(
    apps: list[dict[str, Any]], *, namespace: str | None = APPLICATION_NAMESPACE, root: str | None = ROOT_NAME
) -> Overview:
    """The Overview of these Application documents (as the API returns them)."""
    rows = sorted((row(a) for a in apps), key=lambda r: (r.wave, r.name, r.namespace))
    root_found = root is None or any(
        r.name == root and (namespace is None or r.namespace == namespace) for r in rows
    )
    counts = Counts(
        total=len(rows),
        done=sum(r.done for r in rows),
        sync=dict(Counter(r.sync for r in rows)),
        health=dict(Counter(r.health for r in rows)),
    )
    return Overview(
        namespace=namespace,
        root=root,
        rows=rows,
        root_found=root_found,
        all_done=bool(rows) and root_found and all(r.done for r in rows),
        counts=counts,
    )


def row(app: dict[str, Any]) -> AppRow:
    """One Application document as a row."""
    meta = _map(app.get("metadata"))
    status = _map(app.get("status"))
    sync = _text(_map(status.get("sync")).get("status")) or "Unknown"
    health = _text(_map(status.get("health")).get("status")) or "Unknown"
    done = sync == "Synced" and health == "Healthy"
    return AppRow(
        name=_text(meta.get("name")),
        namespace=_text(meta.get("namespace")),
        wave=wave(app),
        sync=sync,
        health=health,
        message=cut(message(status, done=done), MESSAGE_WIDTH),
        done=done,
    )


def wave(app: dict[str, Any]) -> int:
    """The sync wave: the annotation as an integer; 0 when absent or not an integer (as Argo CD)."""
    value = _map(_map(app.get("metadata")).get("annotations")).get(WAVE_ANNOTATION)
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def message(status: dict[str, Any], *, done: bool = False) -> str:
    """The most useful last message: a failed operation's, else an error condition's, else the health
    message; for an Application not done yet, else a running operation's, a warning condition's, or the
    first resource that is not Synced and Healthy."""
    op = _map(status.get("operationState"))
    if _text(op.get("phase")) in _FAILED_PHASES and _text(op.get("message")):
        return _text(op.get("message"))
    conditions = [_map(c) for c in _list(status.get("conditions"))]
    for c in conditions:
        if _text(c.get("type")).endswith("Error") and _text(c.get("message")):
            return f"{_text(c.get('type'))}: {_text(c.get('message'))}"
    health_message = _text(_map(status.get("health")).get("message"))
    if health_message or done:
        return health_message
    if _text(op.get("phase")) == "Running" and _text(op.get("message")):
        return _text(op.get("message"))
    for c in conditions:
        if _text(c.get("message")):
            return f"{_text(c.get('type'))}: {_text(c.get('message'))}"
    for res in _list(status.get("resources")):
        res = _map(res)
        res_health = _text(_map(res.get("health")).get("status"))
        if res_health not in ("", "Healthy"):
            return f"{_ref(res)}: {res_health}"
        if _text(res.get("status")) == "OutOfSync":
            return f"{_ref(res)}: OutOfSync"
    return ""


def failures(kube: Kube, view: Overview) -> list[str]:
    """For every Application of `view` that is not done, read again: what is wrong, one line each
    (`app: Kind ns/name: health: message`): a failed operation, its conditions, its resources that are
    not Healthy or not Synced (`status.resources`), and the resources the last sync failed on (or whose
    hook failed; `operationState.syncResult.resources`). At most FAILURES_PER_APP lines per Application,
    each at most FAILURE_WIDTH characters."""
    out: list[str] = []
    for r in view.pending:
        live = kube.get(APPLICATION_API, APPLICATION_KIND, r.name, r.namespace or None)
        lines = app_failures(live, r)
        if len(lines) > FAILURES_PER_APP:
            more = len(lines) - FAILURES_PER_APP + 1
            lines = [*lines[: FAILURES_PER_APP - 1], f"{r.name}: {more} more not shown"]
        out.extend(lines)
    return out


def app_failures(app: dict[str, Any] | None, r: AppRow) -> list[str]:
    """The failure lines of one Application document (None: it has gone since it was listed)."""
    name = r.name
    if app is None:
        return [f"{name}: the Application no longer exists"]
    status = _map(app.get("status"))
    lines: dict[str, None] = {}  # ordered, without repeats

    def add(*parts: str) -> None:
        lines[cut(": ".join(p for p in (name, *parts) if p), FAILURE_WIDTH)] = None

    op = _map(status.get("operationState"))
    phase = _text(op.get("phase"))
    if phase in _FAILED_PHASES:
        add(f"operation {phase}", _text(op.get("message")))
    for c in (_map(c) for c in _list(status.get("conditions"))):
        add(_text(c.get("type")) or "condition", _text(c.get("message")))
    unhealthy = 0
    for res in (_map(x) for x in _list(status.get("resources"))):
        health = _map(res.get("health"))
        res_health = _text(health.get("status"))
        if res_health not in ("", "Healthy"):
            unhealthy += 1
            add(_ref(res), res_health, _text(health.get("message")))
        elif _text(res.get("status")) == "OutOfSync":
            add(_ref(res), "OutOfSync")
    for res in (_map(x) for x in _list(_map(op.get("syncResult")).get("resources"))):
        result, hook = _text(res.get("status")), _text(res.get("hookPhase"))
        if result in _FAILED_RESULTS:
            add(_ref(res), result, _text(res.get("message")))
        elif hook in _FAILED_HOOK_PHASES:
            add(_ref(res), f"hook {hook}", _text(res.get("message")))
    if r.health != "Healthy" and not unhealthy and _text(status.get("resourceHealthSource")) == "appTree":
        add(
            f"health {r.health}",
            "Argo CD keeps resource health in its resource tree, not in the Application "
            f"(resourceHealthSource appTree): `argocd app get {r.namespace}/{name}` shows it",
        )
    if not lines:
        add(r.state, r.message)
    return list(lines)


def table(view: Overview) -> str:
    """The Applications as a fixed-width table (NAME WAVE SYNC HEALTH MESSAGE), every line at most
    LINE_WIDTH characters (names and messages cut), then the counts, and the note when there is one."""
    several = len({r.namespace for r in view.rows}) > 1
    names = [f"{r.namespace}/{r.name}" if several else r.name for r in view.rows]
    name_w = min(max([4, *map(len, names)]), 40)
    wave_w = max([4, *(len(str(r.wave)) for r in view.rows)])
    sync_w = max([4, *(min(len(r.sync), 12) for r in view.rows)])
    health_w = max([6, *(min(len(r.health), 12) for r in view.rows)])
    message_w = LINE_WIDTH - (name_w + wave_w + sync_w + health_w + 4 * 2)

    def line(name: str, wave: str, sync: str, health: str, msg: str) -> str:
        cells = [
            cut(name, name_w).ljust(name_w),
            wave.rjust(wave_w),
            cut(sync, sync_w).ljust(sync_w),
            cut(health, health_w).ljust(health_w),
            cut(msg, message_w),
        ]
        return "  ".join(cells).rstrip()

    out = [line("NAME", "WAVE", "SYNC", "HEALTH", "MESSAGE")]
    out += [line(n, str(r.wave), r.sync, r.health, r.message) for n, r in zip(names, view.rows, strict=True)]
    out.append(cut(view.counts.line() + (" (all Synced and Healthy)" if view.all_done else ""), LINE_WIDTH))
    if view.note:
        out.append(cut(view.note, LINE_WIDTH))
    return "\n".join(out)


def progress_lines(prev: Overview | None, cur: Overview) -> list[str]:
    """One line per Application whose sync or health changed since `prev` (all of them when `prev` is
    None), and one per Application that has gone: `name (wave W): Old/State -> New/State: message`."""
    before = {(r.namespace, r.name): r for r in prev.rows} if prev is not None else {}
    out = []
    for r in cur.rows:
        old = before.get((r.namespace, r.name))
        if old is not None and (old.sync, old.health) == (r.sync, r.health):
            continue
        change = f"{old.state} -> {r.state}" if old is not None else r.state
        out.append(
            cut(": ".join(p for p in (f"{r.name} (wave {r.wave})", change, r.message) if p), LINE_WIDTH)
        )
    for key, old in before.items():
        if key not in cur.keys:
            out.append(cut(f"{old.name} (wave {old.wave}): gone", LINE_WIDTH))
    return out


def _ref(res: dict[str, Any]) -> str:
    """`Kind ns/name`, or `Kind name` for a cluster-scoped resource."""
    ns = _text(res.get("namespace"))
    return f"{_text(res.get('kind')) or '?'} {ns + '/' if ns else ''}{_text(res.get('name'))}"


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)

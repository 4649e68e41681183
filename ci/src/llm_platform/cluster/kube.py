"""The one adapter between the install steps and a Kubernetes API server: `Kube` (what the steps need)
and `Kubectl` (that, through the pinned kubectl: server-side apply with our field manager, JSON reads).

Errors are one line (`ClusterError`), with the API server's reason (`Forbidden`, `Unauthorized`,
`Conflict`, `NotFound`, a timeout, a refused connection) so callers and users can tell them apart. The
objects sent to `apply` travel on kubectl's stdin only: never in an argument, a log line or an error
(a Secret's data must never be printed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llm_platform.errors import PlatformError

FIELD_MANAGER = "llm-platform"
KUBECTL_TIMEOUT = 90.0  # seconds for one kubectl call (discovery and retries included)
REQUEST_TIMEOUT = "20s"  # one request: an API server that does not answer fails a step in seconds


class ClusterError(PlatformError):
    """The cluster refused or could not be reached; `reason` is the API's (or `Unreachable`/`Timeout`)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class Kube(Protocol):
    """What the install steps ask of a cluster."""

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        ...

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every live object of that kind (in `namespace`, or in all namespaces when None)."""
        ...

    def apply(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Server-side apply of `objects` (in order) with FIELD_MANAGER, forcing conflicts with other
        managers only where we own the field already; returns the objects as the server has them."""
        ...

    def dry_run(self, obj: dict[str, Any]) -> None:
        """Server-side dry run of applying `obj`: admission (schemas, defaults, webhooks) without persisting;
        ClusterError with the server's reason when the server would refuse it."""
        ...


@dataclass(frozen=True)
class Target:
    """Which cluster: the kubeconfig file and context (defaults: kubectl's own, $KUBECONFIG)."""

    kubeconfig: Path | None = None
    context: str | None = None


# kubectl's words for what went wrong, mapped to the API's reasons.
_REASONS = [
    (re.compile(r"\(Forbidden\)|forbidden:", re.I), "Forbidden"),
    (
        re.compile(
            r"\(Unauthorized\)|must be logged in|Unauthorized|asked for the client to provide credentials",
            re.I,
        ),
        "Unauthorized",
    ),
    (re.compile(r"\(Conflict\)|conflict", re.I), "Conflict"),
    (re.compile(r"\(NotFound\)|not found", re.I), "NotFound"),
    (
        re.compile(r"connection refused|was refused|no such host|dial tcp|network is unreachable", re.I),
        "Unreachable",
    ),
    (re.compile(r"timeout|deadline exceeded|Client.Timeout", re.I), "Timeout"),
]
_SECRETISH = re.compile(r"(?i)(token|password|secret|authorization)([\"']?\s*[:=]\s*)[^\s,}\"']+")


def _said(stderr: str) -> str:
    """kubectl's verdict: its last `error:`/`Error from server` line (client-go logs retries above it),
    else its last line; credentials-looking values masked, cut to one bounded line."""
    lines = [" ".join(ln.split()) for ln in stderr.splitlines() if ln.strip()]
    verdicts = [ln for ln in lines if ln.startswith(("error:", "Error from server", "Error:"))]
    said = (verdicts or lines or [""])[-1]
    return _SECRETISH.sub(r"\1\2<redacted>", said)[:500]


def reason_of(stderr: str) -> str:
    for pattern, reason in _REASONS:
        if pattern.search(stderr):
            return reason
    return ""


@dataclass
class Kubectl:
    """`Kube` through kubectl (PATH, or `binary`)."""

    target: Target = Target()
    binary: str | None = None
    request_timeout: str = REQUEST_TIMEOUT

    def _argv(self, *args: str) -> list[str]:
        kubectl = self.binary or shutil.which("kubectl")
        if kubectl is None:
            raise ClusterError(
                "kubectl is not on PATH (scripts/setup.sh --tests installs the pinned one)", ""
            )
        argv = [kubectl, f"--request-timeout={self.request_timeout}"]
        if self.target.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.target.kubeconfig}")
        if self.target.context:
            argv.append(f"--context={self.target.context}")
        return [*argv, *args]

    def _run(self, args: list[str], what: str, stdin: bytes | None = None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "KUBECTL_EXTERNAL_DIFF"}
        try:
            proc = subprocess.run(
                self._argv(*args),
                input=stdin,
                capture_output=True,
                check=False,
                timeout=KUBECTL_TIMEOUT,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise ClusterError(
                f"{what}: kubectl gave no answer within {KUBECTL_TIMEOUT:.0f} s", "Timeout"
            ) from None
        except OSError as exc:
            raise ClusterError(f"{what}: cannot run kubectl: {exc.strerror}", "") from None
        if proc.returncode != 0:
            said = _said(proc.stderr.decode("utf-8", errors="replace"))
            raise ClusterError(f"{what}: {said or f'kubectl exited {proc.returncode}'}", reason_of(said))
        return proc.stdout.decode("utf-8", errors="replace")

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        args = ["get", _resource(api_version, kind), name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        out = self._run(args, f"get {kind} {namespace + '/' if namespace else ''}{name}")
        return json.loads(out) if out.strip() else None

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        args = ["get", _resource(api_version, kind), "-o", "json"]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        data = json.loads(self._run(args, f"list {kind}") or "{}")
        return [i for i in data.get("items") or [] if isinstance(i, dict)]

    def apply(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not objects:
            return []
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}).encode()
        args = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-o", "json", "-f", "-"]
        out = self._run(args, f"server-side apply of {len(objects)} object(s)", stdin=doc)
        data = json.loads(out or "{}")
        items = data.get("items") if data.get("kind") == "List" else [data]
        return [i for i in items or [] if isinstance(i, dict)]

    def dry_run(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        args = ["apply", "--server-side", "--dry-run=server", f"--field-manager={FIELD_MANAGER}", "-f", "-"]
        what = f"server-side dry run of {obj.get('kind')} {meta.get('namespace') or '-'}/{meta.get('name')}"
        self._run(args, what, stdin=json.dumps(obj).encode())


def _resource(api_version: str, kind: str) -> str:
    """kubectl's fully qualified resource name for a kind: `Kind.version.group` (no discovery guess)."""
    group, _, version = api_version.rpartition("/")
    return f"{kind}.{version}.{group}" if group else kind

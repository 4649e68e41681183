"""`llm-platform cluster ...`: install what sits below GitOps on a cluster. Logic in llm_platform.cluster.

Every step works against the current kubeconfig context (or --kubeconfig/--context), prints a JSON result
on stdout and progress on stderr, and with --dry-run prints the exact objects it would apply (YAML, in
order) without contacting any cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llm_platform.logs import get_logger

if TYPE_CHECKING:
    from llm_platform.cluster.kube import Kubectl

log = get_logger("cluster")

app = typer.Typer(
    help="Install the platform on a cluster: Argo CD, the repository credential, secrets, the root Application.",
    no_args_is_help=True,
)

Kubeconfig = Annotated[
    Path | None, typer.Option("--kubeconfig", help="kubeconfig file (default: kubectl's).")
]
Context = Annotated[
    str | None, typer.Option("--context", help="kubeconfig context (default: the current one).")
]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="Print the objects it would apply (YAML, in order); contact no cluster."),
]
Root = Annotated[Path, typer.Option("--root", help="The checkout (default: the current directory).")]
ChartsMirror = Annotated[
    Path | None,
    typer.Option(
        "--charts-mirror",
        envvar="LLM_PLATFORM_CHARTS_MIRROR",
        help="Take the pinned chart packages from this mirror directory (packages + INDEX.json).",
    ),
]


def _kube(kubeconfig: Path | None, context: str | None) -> Kubectl:
    from llm_platform.cluster.kube import Kubectl, Target

    return Kubectl(Target(kubeconfig=kubeconfig, context=context))


def _print_objects(objects: list[dict[str, Any]]) -> None:
    import yaml

    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))


def _result(model: Any) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")


def bootstrap_plan(root: Path, charts_mirror: Path | None) -> list[dict[str, Any]]:
    from llm_platform.cluster.bootstrap import ARGOCD_APPLICATION, bootstrap_objects
    from llm_platform.lint.engine import DEFAULT_KUBERNETES_VERSION
    from llm_platform.lint.helm import HelmOptions, render_application

    rendered = render_application(
        root, root / ARGOCD_APPLICATION, DEFAULT_KUBERNETES_VERSION, HelmOptions(mirror=charts_mirror)
    )
    return bootstrap_objects(root, rendered)


@app.command("bootstrap")
def bootstrap(
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    dry_run: DryRun = False,
    root: Root = Path("."),
    charts_mirror: ChartsMirror = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the workloads.")] = 600.0,
) -> None:
    """Install Argo CD from the chart and values of the tree's self-managed `argocd` Application
    (rendered like `lint` renders it), server-side applied with our field manager, then wait until its
    workloads are available. The Application adopts these objects with no diff; a re-run changes nothing."""
    from llm_platform.cluster.bootstrap import BootstrapResult, changed_objects, wait_available

    objects = bootstrap_plan(root, charts_mirror)
    if dry_run:
        _print_objects(objects)
        return
    kube = _kube(kubeconfig, context)
    changed = changed_objects(kube, objects)
    if changed:
        log.info("bootstrap: applying %d object(s), %d of them new or changed", len(objects), len(changed))
        kube.apply(objects)
    else:
        log.info("bootstrap: all %d object(s) already applied as rendered", len(objects))
    available = wait_available(kube, objects, timeout)
    _result(BootstrapResult(chart="argo-cd", objects=len(objects), changed=changed, available=available))


@app.command("repo-credential")
def repo_credential(
    repo_url: Annotated[str, typer.Option("--repo-url", help="The fork's git URL Argo CD reads.")],
    ssh_key_file: Annotated[
        Path | None, typer.Option("--ssh-key-file", help="SSH private key for an SSH URL (else $GIT_TOKEN).")
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    dry_run: DryRun = False,
) -> None:
    """The Argo CD repository Secret for the fork (`argocd.argoproj.io/secret-type: repository`), from
    $GIT_TOKEN (HTTPS) or an SSH key file; updated only when it differs; its values are never printed."""
    from llm_platform.cluster.repo_credential import apply_credential, credential, secret_object

    cred = credential(repo_url, ssh_key_file=ssh_key_file)
    if dry_run:
        _print_objects([secret_object(cred, reveal=False)])
        return
    _result(apply_credential(_kube(kubeconfig, context), cred))


Env = Annotated[
    str, typer.Option("--env", help="Environment: gke or kind (gitops/bootstrap/root-<env>.yaml).")
]
RepoUrl = Annotated[
    str | None,
    typer.Option("--repo-url", help="The fork's git URL the Applications read (default: the origin remote)."),
]
Revision = Annotated[str, typer.Option("--revision", help="The git revision Argo CD syncs.")]
Timeout = Annotated[str, typer.Option("--timeout", help="How long --wait waits, e.g. 30m, 90s.")]


def origin_url(root: Path) -> str:
    """The checkout's `origin` remote (what `--repo-url` defaults to), or a one-line error saying so."""
    import subprocess

    from llm_platform.errors import InputError, url_without_credentials

    proc = subprocess.run(
        ["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True, check=False
    )
    url = proc.stdout.strip()
    if proc.returncode != 0 or not url:
        raise InputError("--repo-url: not given, and the checkout has no `origin` remote to default to")
    if url_without_credentials(url) != url:
        raise InputError("--repo-url: the origin remote carries credentials: give --repo-url without them")
    return url


def _follow(kube: Kubectl, timeout: str) -> Any:
    """`root --wait`: a live table on a TTY, plain progress lines otherwise; the final overview."""
    from llm_platform.cluster.root import parse_duration, wait
    from llm_platform.cluster.status import Overview, progress_lines, table

    tty = sys.stderr.isatty()
    previous: list[Overview] = []

    def on_progress(view: Overview) -> None:
        if tty:
            sys.stderr.write("\x1b[H\x1b[2J" + table(view) + "\n")
        else:
            for line in progress_lines(previous[-1] if previous else None, view):
                log.info("root: %s", line)
        previous.append(view)
        del previous[:-1]

    return wait(kube, parse_duration(timeout), on_progress=on_progress)


@app.command("root")
def root_step(
    env: Env,
    repo_url: RepoUrl = None,
    revision: Revision = "main",
    wait_flag: Annotated[
        bool, typer.Option("--wait", help="Follow every Application until Synced and Healthy.")
    ] = False,
    timeout: Timeout = "30m",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    dry_run: DryRun = False,
    root: Root = Path("."),
) -> None:
    """Apply the environment's root Application (with the repo URL and revision), then with --wait follow
    every Application until all are Synced and Healthy; on timeout print the failing ones and exit 1."""
    from llm_platform.cluster.root import WaitTimeout, apply_root, root_application
    from llm_platform.cluster.status import table

    obj = root_application(root, env, repo_url or origin_url(root), revision)
    if dry_run:
        _print_objects([obj])
        return
    kube = _kube(kubeconfig, context)
    result = apply_root(kube, obj)
    if wait_flag:
        try:
            view = _follow(kube, timeout)
        except WaitTimeout as exc:
            sys.stderr.write(table(exc.overview) + "\n" + "\n".join(exc.failures) + "\n")
            raise
        sys.stderr.write(table(view) + "\n")
    _result(result)


@app.command("status")
def status(kubeconfig: Kubeconfig = None, context: Context = None) -> None:
    """The table of every Application (name, wave, sync, health, last message), once; JSON on stdout."""
    from llm_platform.cluster.status import failures, overview, table

    kube = _kube(kubeconfig, context)
    view = overview(kube)
    sys.stderr.write(table(view) + "\n")
    for line in failures(kube, view):
        log.info("%s", line)
    _result(view)

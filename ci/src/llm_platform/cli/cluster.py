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
    from llm_platform.cluster.kube import Kube, Kubectl

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
    from llm_platform.cluster.bootstrap import bootstrap_plan, run_bootstrap

    objects = bootstrap_plan(root, charts_mirror)
    if dry_run:
        _print_objects(objects)
        return
    _result(run_bootstrap(_kube(kubeconfig, context), objects, timeout))


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


def _follow(kube: Kube, timeout: str) -> Any:
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
    from llm_platform.cluster.root import apply_root, root_application
    from llm_platform.configure.identity import origin_url

    obj = root_application(root, env, repo_url or origin_url(root), revision)
    if dry_run:
        _print_objects([obj])
        return
    kube = _kube(kubeconfig, context)
    result = apply_root(kube, obj)
    if wait_flag:
        _follow_or_fail(kube, timeout)
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


FromFile = Annotated[
    list[str] | None,
    typer.Option(
        "--from-file", help="KEY=PATH: take that secret value from a file (repeatable).", metavar="KEY=PATH"
    ),
]
Rotate = Annotated[
    list[str] | None, typer.Option("--rotate", help="Give this key a new value (repeatable).", metavar="KEY")
]


@app.command("secrets")
def secrets_step(
    env: Env,
    rotate: Rotate = None,
    from_file: FromFile = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Say which keys it would create, keep or rotate; contact nothing."),
    ] = False,
    root: Root = Path("."),
) -> None:
    """Create the secret values the environment's ExternalSecrets need that its store lacks (Google Secret
    Manager on gke, with $GOOGLE_OAUTH_ACCESS_TOKEN; nothing on kind, whose store is in git). Values from
    --from-file, $LLM_PLATFORM_SECRET_<KEY>, or generated where any value of the right shape will do.
    Existing values are kept unless --rotate names them. The result lists keys, never values."""
    from llm_platform.cluster.secrets import run_secrets

    _result(run_secrets(root, env, rotate or [], from_file or [], dry_run=dry_run))


@app.command("install")
def install(
    env: Env,
    repo_url: RepoUrl = None,
    revision: Revision = "main",
    ssh_key_file: Annotated[
        Path | None, typer.Option("--ssh-key-file", help="SSH key for an SSH repo URL (else $GIT_TOKEN).")
    ] = None,
    public_repo: Annotated[
        bool, typer.Option("--public-repo", help="The repository is public: no repository credential.")
    ] = False,
    from_file: FromFile = None,
    timeout: Timeout = "30m",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    root: Root = Path("."),
    charts_mirror: ChartsMirror = None,
) -> None:
    """`configure --check`, bootstrap, repo-credential, secrets, root --wait, in order; a JSON line per
    step. A second run reports that nothing changed."""
    from llm_platform.cluster.install import InstallOptions, run_install
    from llm_platform.configure.identity import origin_url

    options = InstallOptions(
        env=env,
        repo_url=repo_url or origin_url(root),
        revision=revision,
        public_repo=public_repo,
        ssh_key_file=ssh_key_file,
        from_file=from_file or [],
        charts_mirror=charts_mirror,
    )
    installed = run_install(
        _kube(kubeconfig, context), root, options, lambda kube: _follow_or_fail(kube, timeout)
    )
    for step in installed.steps:
        _result(step)


def _follow_or_fail(kube: Kube, timeout: str) -> Any:
    """`_follow`, and on timeout the last table and what failed on stderr before the error."""
    from llm_platform.cluster.root import WaitTimeout
    from llm_platform.cluster.status import table

    try:
        view = _follow(kube, timeout)
    except WaitTimeout as exc:
        sys.stderr.write(table(exc.overview) + "\n" + "\n".join(exc.failures) + "\n")
        raise
    sys.stderr.write(table(view) + "\n")
    return view


@app.command("kind-test")
def kind_test(
    name: Annotated[str, typer.Option("--name", help="The kind cluster's name.")] = "llm-platform-kind-test",
    keep: Annotated[bool, typer.Option("--keep", help="Leave the cluster running at the end.")] = False,
    reuse: Annotated[
        bool,
        typer.Option("--reuse", help="Test on the kind cluster of that name if it exists (after --keep)."),
    ] = False,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            help="Test on this throwaway cluster instead of making a kind cluster (it is not deleted).",
        ),
    ] = None,
    timeout: Timeout = "30m",
    dry_run: DryRun = False,
    root: Root = Path("."),
    charts_mirror: ChartsMirror = None,
) -> None:
    """Install the CURRENT checkout (its gitops/ as it is now, served to Argo CD by a git server inside the
    cluster) on a throwaway kind cluster with `install --env kind`, wait until every Application is Synced and
    Healthy, dry-run the GPU environment's GPU objects on the API server, then delete the cluster (unless
    --keep). Needs kind and Docker or Podman; --kubeconfig takes a cluster you made instead."""
    from llm_platform.cluster.kind import GivenCluster, KindCluster, Throwaway, check_name, cluster_config
    from llm_platform.cluster.kind_test import plan, run_kind_test, work_directory
    from llm_platform.cluster.kube import Kubectl, Target

    with work_directory() as work:
        the_plan = plan(root, Path(work), charts_mirror)
        snapshot = the_plan.snapshot
        log.info(
            "kind-test: serving %s/ of %s%s as commit %s (%d byte bundle)",
            "gitops",
            snapshot.source_head or "a tree without git",
            " with uncommitted changes" if snapshot.source_dirty else "",
            snapshot.commit[:12],
            snapshot.bundle_bytes,
        )
        if dry_run:
            import yaml

            sys.stderr.write("# kind cluster config\n" + yaml.safe_dump(cluster_config(), sort_keys=False))
            sys.stderr.write(
                f"# then a server-side dry run of {len(the_plan.gpu)} GPU object(s): "
                + ", ".join(o["metadata"]["name"] for o in the_plan.gpu)
                + "\n"
            )
            _print_objects(the_plan.objects())
            return
        cluster: Throwaway = (
            GivenCluster(kubeconfig)
            if kubeconfig is not None
            else KindCluster(check_name(name), Path(work) / "kubeconfig", reuse=reuse)
        )
        result = run_kind_test(
            cluster,
            lambda path: Kubectl(Target(kubeconfig=path)),
            the_plan,
            lambda kube: _follow_or_fail(kube, timeout),
            keep=keep or kubeconfig is not None,
            charts_mirror=charts_mirror,
        )
    if keep and kubeconfig is None:
        log.info("kind-test: the cluster is kept; reach it with: kind export kubeconfig --name %s", name)
    _result(result)

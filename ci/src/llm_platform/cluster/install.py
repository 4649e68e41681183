"""`cluster install`: configure --check, bootstrap, repo-credential, secrets, root and the wait, in order,
each step the same function its own command runs. `kind-test` runs this too, with its git server put in
between bootstrap and root (`after_bootstrap`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llm_platform.cluster.kube import Kube
from llm_platform.cluster.status import Overview
from llm_platform.logs import get_logger

log = get_logger("cluster")

BOOTSTRAP_TIMEOUT_S = 600.0


@dataclass
class InstallOptions:
    env: str
    repo_url: str
    revision: str
    public_repo: bool = False
    ssh_key_file: Path | None = None
    from_file: Sequence[str] = ()
    charts_mirror: Path | None = None


@dataclass
class Installed:
    steps: list[BaseModel]  # each step's result, in order
    overview: Overview  # every Application, Synced and Healthy


def check_placeholders(repo_root: Path, env: str) -> None:
    """`configure --check --env`: PlaceholdersLeftError (naming each file:line) while one is left."""
    from llm_platform.configure.service import PlaceholdersLeftError, check, check_line

    left = check(repo_root, env)
    if left.placeholders:
        for placeholder in left.placeholders:
            log.error("%s", check_line(placeholder))
        raise PlaceholdersLeftError(
            f"install: {len(left.placeholders)} placeholder(s) left for environment {env}: run llm-platform configure"
        )


def run_install(
    kube: Kube,
    repo_root: Path,
    options: InstallOptions,
    follow: Callable[[Kube], Overview],
    *,
    bootstrap_objects: list[dict[str, Any]] | None = None,
    after_bootstrap: Callable[[Kube], BaseModel] | None = None,
) -> Installed:
    """Every step in order against `kube`; `follow` waits for the Applications (the CLI's live table)."""
    from llm_platform.cluster.bootstrap import bootstrap_plan, run_bootstrap
    from llm_platform.cluster.repo_credential import apply_credential, credential
    from llm_platform.cluster.root import apply_root, root_application
    from llm_platform.cluster.secrets import run_secrets

    check_placeholders(repo_root, options.env)
    objects = (
        bootstrap_objects
        if bootstrap_objects is not None
        else bootstrap_plan(repo_root, options.charts_mirror)
    )
    # Computed before anything is applied: a bad root file or option fails before the cluster is touched.
    root = root_application(repo_root, options.env, options.repo_url, options.revision)
    cred = None if options.public_repo else credential(options.repo_url, ssh_key_file=options.ssh_key_file)
    steps: list[BaseModel] = [run_bootstrap(kube, objects, BOOTSTRAP_TIMEOUT_S)]
    if after_bootstrap is not None:
        steps.append(after_bootstrap(kube))
    if cred is not None:
        steps.append(apply_credential(kube, cred))
    steps.append(run_secrets(repo_root, options.env, (), list(options.from_file)))
    steps.append(apply_root(kube, root))
    view = follow(kube)
    return Installed(steps=steps, overview=view)

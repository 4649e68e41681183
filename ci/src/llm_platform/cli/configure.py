"""`llm-platform configure`: the front door of llm_platform.configure (options in, JSON out)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_platform.errors import InputError

# The configure machinery (ruamel, pydantic) is imported inside the command: every other command starts
# without it.

HELP = (
    "Set a fork's identity in one command: rewrite the template's placeholders in gitops/ and modelcars/.\n\n"
    "The upstream tree is a template: the git URL of every Argo CD source "
    "(https://github.com/llm-platform-example/llm-platform.git), the GCP project of the gke secret store "
    "(llm-platform-example) and the modelcar repositories "
    "(us-central1-docker.pkg.dev/llm-platform-example/modelcars/<model>, digests kept) are placeholders. "
    "configure replaces exactly their characters (comments, quoting and order stay), sets --revision as the "
    "targetRevision of the sources of this repository only (never a chart's), removes `template: true` from "
    "gitops/lint.yaml, re-parses every edited file to prove nothing else changed, then writes all files "
    "atomically, or none. A placeholder it cannot edit exactly (inside a longer value, escaped, folded, "
    "shared through an anchor with another field) is an error naming file:line, and nothing is written. "
    "A second run with the same options changes nothing.\n\n"
    "Prints JSON on stdout: each changed file with file:line, old and new value of every edit, and "
    "`unchanged: true` when nothing changed. Documentation (Markdown) is left as it is.\n\n"
    "--check writes nothing: exit 1 with one line per placeholder left on stderr, else 0; with --env, "
    "only what that environment installs (kind needs no GCP project).\n\n"
    "Example: llm-platform configure --repo-url https://github.com/acme/llm-platform.git "
    "--project-id acme-llm --region europe-west4"
)


def configure(
    repo_url: Annotated[
        str | None,
        typer.Option(
            "--repo-url",
            metavar="URL",
            help="The fork's git URL, https or ssh, without credentials (default: the `origin` remote).",
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision",
            metavar="REV",
            help="targetRevision of the sources of this repository (default: main).",
        ),
    ] = None,
    project_id: Annotated[
        str | None,
        typer.Option(
            "--project-id",
            metavar="ID",
            help="GCP project id (6-30 lowercase letters, digits, hyphens; starts with a letter). Needed while "
            "placeholders of the project are left.",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region", metavar="REGION", help="GCP region of the Artifact Registry (default: us-central1)."
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            metavar="PREFIX",
            help="Modelcar repository prefix (default: REGION-docker.pkg.dev/PROJECT-ID/modelcars).",
        ),
    ] = None,
    root: Annotated[
        Path | None, typer.Option("--root", metavar="DIR", help="The checkout (default: the cwd).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and prove the edits, print them, write nothing.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 naming each placeholder left, else 0."),
    ] = False,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            metavar="ENV",
            help="With --check: only the files environment ENV installs (gke, kind: gitops/bootstrap/root-ENV.yaml).",
        ),
    ] = None,
) -> None:
    from llm_platform.configure.identity import Identity, origin_url
    from llm_platform.configure.service import PlaceholdersLeftError, check_line
    from llm_platform.configure.service import check as check_tree
    from llm_platform.configure.service import configure as configure_tree

    checkout = (root if root is not None else Path.cwd()).resolve()
    if not checkout.is_dir():
        raise InputError(f"--root {checkout}: not a directory")
    if check:
        given = [
            flag
            for flag, value in (
                ("--repo-url", repo_url),
                ("--revision", revision),
                ("--project-id", project_id),
                ("--region", region),
                ("--registry", registry),
                ("--dry-run", dry_run or None),
            )
            if value is not None
        ]
        if given:
            raise InputError(f"--check: writes nothing and takes no {given[0]}; run it without")
        report = check_tree(checkout, env)
        if report.placeholders:
            for placeholder in report.placeholders:
                typer.echo(check_line(placeholder), err=True)
            files = len({p.path for p in report.placeholders})
            scope = f" of environment {env}" if env else ""
            raise PlaceholdersLeftError(
                f"configure --check: {len(report.placeholders)} placeholder(s) left in {files} file(s){scope}: "
                "run llm-platform configure"
            )
        typer.echo(report.model_dump_json(indent=2))
        return
    if env is not None:
        raise InputError("--env: only with --check (configure itself sets every environment's files)")
    identity = Identity.from_options(
        repo_url=repo_url if repo_url is not None else origin_url(checkout),
        revision=revision,
        project_id=project_id,
        region=region,
        registry=registry,
    )
    result = configure_tree(checkout, identity, dry_run=dry_run)
    typer.echo(result.model_dump_json(indent=2))


def register(app: typer.Typer) -> None:
    app.command("configure", help=HELP)(configure)

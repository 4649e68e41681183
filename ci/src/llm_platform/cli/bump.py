"""`llm-platform bump`: the front door of llm_platform.bump (options in, result line out)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_platform.bump import DEFAULT_MAX_ATTEMPTS

# The bump machinery is imported inside the command (llm_platform.bump loads it on first use):
# importing it here would make every `llm-platform` start pay for it (~0.3 s), whatever the command.

HELP = (
    "Point the GitOps tree and the model lock at a new modelcar digest.\n\n"
    "Finds every reference to the model's image repository under --gitops, in YAML and JSON (KServe "
    "storageUri oci://..., image volumes, containers, Helm values with repository:/digest: or "
    "registry:/repository:/digest:, `<<:` merges, kustomize images:) and replaces only the digest's "
    "characters, then re-parses each edited file to prove nothing else changed. A reference pinned by tag "
    "only is an error. Also writes modelcars/NAME.lock.json (spec hash, Hugging Face commit, image).\n\n"
    "Then every text file of the tree is checked: each mention of the repository must carry the new digest, "
    "or be documentation (Markdown) or a commented-out line; anything else fails the bump (exit 2) naming "
    "file:line, and nothing is written. Symlinks are followed inside the repository only; the real file is "
    "edited, never the link. A push the remote refuses (a hook, a protected branch, credentials) ends at "
    "once with the remote's message; only races are retried.\n\n"
    "Prints the commit sha, `unchanged`, or (without --commit/--push) the edited files on stdout. "
    "Exit codes: 0 done or unchanged, 2 bad input, 3 conflict (someone else bumped meanwhile), 1 other failure.\n\n"
    "Git credentials: $GIT_TOKEN (user $GIT_USERNAME, default x-access-token) is handed to git by a credential "
    "helper while fetch/push run; it is never put in a URL, an argument or .git/config.\n\n"
    "With --verify-key (or a key named in modelcars/signing.yaml) the image must verify first, as `modelcar "
    "verify` checks it; one that does not is refused (exit 1) before anything is written.\n\n"
    "Example: llm-platform bump --model qwen2.5-coder-7b-instruct "
    "--ref us-central1-docker.pkg.dev/llm-platform-example/modelcars/qwen2.5-coder-7b-instruct@sha256:<hex> "
    "--hf-commit <sha> --push origin/main"
)


def bump(
    model: Annotated[str, typer.Option("--model", help="Spec name: modelcars/NAME.yaml without .yaml.")],
    ref: Annotated[str, typer.Option("--ref", help="The new image, REGISTRY/REPO@sha256:<64 hex>.")],
    repo: Annotated[
        Path | None,
        typer.Option("--repo", help="Repository checkout (default: the git repository of the cwd)."),
    ] = None,
    gitops: Annotated[
        Path | None, typer.Option("--gitops", help="GitOps tree to edit (default: REPO/gitops).")
    ] = None,
    modelcars: Annotated[
        Path | None,
        typer.Option("--modelcars", help="Directory of specs and locks (default: REPO/modelcars)."),
    ] = None,
    commit: Annotated[
        bool, typer.Option("--commit", help="Commit the edit (one commit with trailers).")
    ] = False,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            metavar="REMOTE[/BRANCH]",
            help="Commit on the fetched tip of REMOTE's BRANCH (default: the current branch) and push; "
            "on a rejected push, fetch, re-apply and retry with backoff.",
        ),
    ] = None,
    pr_branch: Annotated[
        str | None,
        typer.Option(
            "--pr-branch", metavar="BRANCH", help="With --push: push to this review branch instead."
        ),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect", metavar="DIGEST", help="sha256:... the references must hold now (else exit 3)."
        ),
    ] = None,
    hf_commit: Annotated[
        str | None,
        typer.Option(
            "--hf-commit",
            metavar="SHA",
            help="Hugging Face commit the image was built from, for the lock and the HF-Commit trailer. "
            "Optional when the spec's revision is a commit sha or the lock already records this image.",
        ),
    ] = None,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, help="Push attempts before giving up.")
    ] = DEFAULT_MAX_ATTEMPTS,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Write nothing; print the unified diff the bump would make (work tree)."
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the full result as JSON instead.")
    ] = False,
    verify_key: Annotated[
        Path | None,
        typer.Option(
            "--verify-key",
            help="Refuse an image that does not verify with this public key (signature and attestations, "
            "`modelcar verify`); default: the key modelcars/signing.yaml names, if any.",
        ),
    ] = None,
) -> None:
    from llm_platform.bump import bump_model

    result = bump_model(
        model,
        ref,
        repo=repo,
        gitops=gitops,
        modelcars=modelcars,
        commit=commit,
        push=push,
        pr_branch=pr_branch,
        expect=expect,
        hf_commit=hf_commit,
        max_attempts=max_attempts,
        dry_run=dry_run,
        verify_key=verify_key,
    )
    typer.echo(result.model_dump_json(indent=2) if json_output else result.summary_line())


def register(app: typer.Typer) -> None:
    app.command("bump", help=HELP, no_args_is_help=True)(bump)

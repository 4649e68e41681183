"""The bump commit message: a subject a human scans, a body, and trailers a machine parses (`git interpret-trailers`)."""

from __future__ import annotations

from llm_platform.bump.plan import BumpPlan


def short_digest(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def commit_message(plan: BumpPlan) -> str:
    spec = plan.spec
    files = sorted({ref.path for ref in plan.edited})
    previous = plan.previous_digests()
    subject = f"bump({spec.name}): modelcar image to {short_digest(plan.image.digest)}"
    if previous:
        subject += f" (was {short_digest(previous[0])})"
    body = [
        (
            f"Point {len(plan.edited)} reference(s) to {plan.image.repository} at {plan.image.digest}"
            f" and update {plan.lock_path}."
        ),
    ]
    if files:
        body.append("")
        body.extend(f"- {path}" for path in files)
    trailers = [
        f"Model: {spec.name}",
        f"HF-Repo: {spec.huggingface.repo}",
        f"HF-Commit: {plan.lock_after.hf_commit}",
        f"Image: {plan.image}",
    ]
    trailers += [f"Previous-Digest: {digest}" for digest in previous] or ["Previous-Digest: none"]
    return "\n".join([subject, "", *body, "", *trailers]) + "\n"

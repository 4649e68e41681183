"""No lost update: a compare-and-swap on the digests a bump read before it edits.

The first read (or `--expect`) fixes which digests may be replaced. On every later tip, a reference
holding any other digest means someone bumped in between: stop with a ConflictError rather than
overwrite it. References already holding our digest are fine (someone, maybe us, got there first).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_platform.bump.plan import BumpPlan
from llm_platform.errors import ConflictError


@dataclass(frozen=True)
class ReadState:
    """What the bump saw first: the digests it is allowed to replace."""

    reference_digests: frozenset[str]
    lock_digest: str | None


def check_expected(plan: BumpPlan, expect: str | None, first: ReadState | None) -> ReadState:
    """Raise ConflictError if the snapshot holds a digest that is neither ours nor one we read/expect."""
    ours = plan.image.digest
    current = plan.reference_digests() - {ours}
    if expect is not None:
        allowed = {expect}
    elif first is not None:
        allowed = set(first.reference_digests)
    else:
        allowed = set(current)
    unexpected = [ref for ref in plan.references if ref.digest in current - allowed]
    if unexpected:
        shown = ", ".join(f"{ref.where} holds {ref.digest}" for ref in unexpected[:5])
        wanted = expect if expect is not None else " or ".join(sorted(allowed)) or "no other digest"
        raise ConflictError(
            f"{plan.spec.name}: {shown}, expected {wanted}; someone else changed it, nothing was overwritten"
        )

    lock_now = plan.lock_before.digest if plan.lock_before else None
    if lock_now is not None and lock_now != ours:
        if expect is not None and not plan.references and lock_now != expect:
            raise ConflictError(
                f"{plan.spec.name}: {plan.lock_path} records {lock_now}, expected {expect}; nothing was overwritten"
            )
        if first is not None and lock_now != first.lock_digest:
            raise ConflictError(
                f"{plan.spec.name}: {plan.lock_path} changed to {lock_now} since it was read "
                f"({first.lock_digest or 'absent'}); nothing was overwritten"
            )
    if first is not None:
        return first
    return ReadState(reference_digests=frozenset(current), lock_digest=lock_now)

"""What a bump did, as a pydantic model (the CLI prints its summary line; `--json` prints all of it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from llm_platform.bump.locate import ReferenceForm
from llm_platform.bump.plan import BumpPlan

BumpStatus = Literal["unchanged", "planned", "edited", "committed", "pushed"]


class ReferenceChange(BaseModel):
    """One reference whose digest was replaced."""

    path: str
    line: int
    field: str
    form: ReferenceForm
    previous_digest: str


class BumpResult(BaseModel):
    model: str
    image: str
    status: BumpStatus
    commit: str | None = None  # the new commit (committed/pushed), else None
    remote: str | None = None
    branch: str | None = None  # the branch pushed to (the review branch with --pr-branch)
    files: list[str] = []
    references: list[ReferenceChange] = []
    previous_digests: list[str] = []
    attempts: int = 0  # push attempts
    diff: str | None = None  # with dry_run: the unified diff that would be applied

    def summary_line(self) -> str:
        """The result on stdout: the commit sha, `unchanged`, the diff of a dry run, or the edited files."""
        if self.status == "unchanged":
            return "unchanged"
        if self.diff is not None:
            return self.diff.rstrip("\n")
        if self.commit:
            return self.commit
        return "\n".join(self.files)

    @classmethod
    def from_plan(cls, plan: BumpPlan, status: BumpStatus, **extra: object) -> BumpResult:
        return cls(
            model=plan.spec.name,
            image=str(plan.image),
            status=status,
            files=sorted(plan.files) if status != "unchanged" else [],
            references=[
                ReferenceChange(
                    path=r.path, line=r.line, field=r.field, form=r.form, previous_digest=r.digest
                )
                for r in plan.edited
            ]
            if status != "unchanged"
            else [],
            previous_digests=plan.previous_digests() if status != "unchanged" else [],
            **extra,  # type: ignore[arg-type]
        )

"""What `configure` did or found, as pydantic models: the JSON it prints on stdout."""

from __future__ import annotations

from pydantic import BaseModel, Field

from llm_platform.configure.scan import PlaceholderKind


class Edit(BaseModel):
    """One value that changes: where, and its whole value before and after."""

    where: str = Field(description="file:line")
    field: str = Field(description="where in the document, e.g. spec.sources[1].repoURL")
    kind: PlaceholderKind
    old: str
    new: str | None = Field(description="the value after the edit; null: the line is removed")


class FileEdits(BaseModel):
    path: str
    edits: list[Edit]


class Placeholder(BaseModel):
    path: str
    line: int
    kind: PlaceholderKind
    placeholder: str
    field: str


class ConfigureResult(BaseModel):
    root: str
    dry_run: bool
    unchanged: bool = Field(description="true when nothing needed to change (a second run)")
    repo_url: str
    revision: str
    project_id: str | None
    region: str
    registry: str | None
    files: list[FileEdits] = Field(default_factory=list, description="the files that change, sorted")
    left: list[Placeholder] = Field(
        default_factory=list, description="placeholders left because the option that sets them was not given"
    )

    @property
    def edit_count(self) -> int:
        return sum(len(f.edits) for f in self.files)


class CheckResult(BaseModel):
    """`configure --check`: the placeholders left in what is checked (all of it, or one environment's)."""

    env: str | None
    files_checked: int
    placeholders: list[Placeholder] = Field(default_factory=list)

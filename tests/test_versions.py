"""The README's version table is the truth about pins: every row's version is what the files it names
pin, a row that differs from the validated version says why, and every chart the tree deploys has a
row (so a pin cannot move without the table, nor the table without the pin)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llm_platform.lint.charts_lock import tree_chart_sources

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent


def _rows() -> list[dict[str, str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Versions\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["Component", "Validated", "Pinned here", "Pinned in", "Why it differs"]
    rows = []
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        assert len(cells) == len(header), ln
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _files(row: dict[str, str]) -> list[str]:
    return re.findall(r"`([^`]+)`", row["Pinned in"])


def _pins(path: Path) -> set[str]:
    """Every version a file pins: Application targetRevisions and image tags pinned by digest."""
    text = path.read_text()
    found = set(re.findall(r"^\s*targetRevision:\s*['\"]?([^\s'\"#]+)", text, re.MULTILINE))
    found |= set(re.findall(r":([\w.-]+)@sha256:[0-9a-f]{64}", text))
    return found - {"main", "HEAD"}


def test_the_table_has_the_validated_components() -> None:
    rows = _rows()
    assert len(rows) >= 15
    names = " ".join(r["Component"] for r in rows)
    for component in ("Argo CD", "Kueue", "vLLM", "KServe", "agentgateway", "OpenCost", "cert-manager"):
        assert component in names


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["Component"])
def test_each_row_is_what_its_files_pin(row: dict[str, str]) -> None:
    files = _files(row)
    assert files, f"{row['Component']}: no file named"
    for rel in files:
        pins = _pins(REPO / rel)
        assert row["Pinned here"] in pins, f"{rel} pins {sorted(pins)}, the README says {row['Pinned here']}"
    if row["Validated"] not in (row["Pinned here"], "none named"):
        assert len(row["Why it differs"]) > 20, (
            f"{row['Component']}: differs from the validated set without a reason"
        )
    else:
        assert not row["Why it differs"], f"{row['Component']}: a reason for a pin that does not differ"


def test_every_chart_the_tree_deploys_has_a_row_with_its_version() -> None:
    covered = {(rel, r["Pinned here"]) for r in _rows() for rel in _files(r)}
    sources = tree_chart_sources(sorted((REPO / "gitops" / "apps").rglob("*.yaml")))
    assert len(sources) >= 15
    for path, _repo, chart, version in sources:
        rel = path.relative_to(REPO).as_posix()
        assert (rel, version) in covered, (
            f"chart {chart} {version} ({rel}) has no row in the README's version table"
        )

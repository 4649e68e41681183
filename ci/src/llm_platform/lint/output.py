"""Report formats: text (one finding per line), JSON (schemas/lint-report.schema.json) and SARIF 2.1.0."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from llm_platform.lint.model import LintReport
from llm_platform.lint.rules import RULES

TOOL_NAME = "llm-platform-lint"
JSON_SCHEMA_ID = "https://llm-platform.example/schemas/lint-report.schema.json"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)


def schema_text(name: str) -> str:
    return files("llm_platform.lint").joinpath("schemas", name).read_text(encoding="utf-8")


def to_text(report: LintReport) -> str:
    return "".join(f.text() + "\n" for f in report.findings)


def to_json(report: LintReport) -> str:
    doc: dict[str, Any] = {
        "$schema": JSON_SCHEMA_ID,
        "tool": TOOL_NAME,
        "kubernetes_version": report.kubernetes_version,
        "exit_code": report.exit_code,
        "summary": {"errors": len(report.errors), "warnings": len(report.findings) - len(report.errors)},
        "findings": [f.model_dump(mode="json") for f in report.findings],
        "coverage": report.coverage.model_dump(mode="json"),
    }
    return json.dumps(doc, indent=2) + "\n"


def to_sarif(report: LintReport) -> str:
    used = sorted({f.rule_id for f in report.findings})
    rules = [
        {
            "id": rid,
            "name": rid,
            "shortDescription": {"text": RULES[rid].rationale},
            "defaultConfiguration": {"level": RULES[rid].severity.value},
            "properties": {"category": RULES[rid].category},
        }
        for rid in sorted(RULES)
    ]
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = [
        {
            "ruleId": f.rule_id,
            "ruleIndex": index[f.rule_id],
            "level": f.severity.value,
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": quote(f.path)},
                        "region": {"startLine": f.line, "startColumn": f.col},
                    },
                    **({"logicalLocations": [{"fullyQualifiedName": f.object}]} if f.object else {}),
                }
            ],
        }
        for f in report.findings
    ]
    doc = {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": TOOL_NAME, "rules": rules}},
                "results": results,
                "properties": {"kubernetesVersion": report.kubernetes_version, "rulesReported": used},
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


FORMATS = {"text": to_text, "json": to_json, "sarif": to_sarif}

"""Validating a custom resource against its CRD's structural schema, the way the API server does.

Order per node: nulls of non-nullable fields are pruned, defaults are applied, values are checked
(type, enum, pattern, bounds, list types, unknown fields unless x-kubernetes-preserve-unknown-fields),
then the node's x-kubernetes-validations CEL rules run on the defaulted value.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llm_platform.lint.cel import CEL, CelOutcome

JsonPath = tuple[str | int, ...]
_ROOT_META = ("apiVersion", "kind", "metadata")


@dataclass
class SchemaError:
    rule_id: str  # schema-unknown-field | schema-invalid | schema-cel
    path: JsonPath
    message: str


@dataclass
class ValidationResult:
    errors: list[SchemaError] = field(default_factory=list)
    cel_evaluated: int = 0
    cel_skipped: list[str] = field(default_factory=list)
    # (rule, canonical JSON of self) -> outcome, shared by one lint run: overlays render the same
    # values many times and cel-python evaluation is the slowest part of linting.
    cel_memo: dict[tuple[str, str], CelOutcome] = field(default_factory=dict)


_PATTERNS: dict[str, re.Pattern[str] | None] = {}


def _pattern(p: str) -> re.Pattern[str] | None:
    if p not in _PATTERNS:
        try:
            _PATTERNS[p] = re.compile(p)
        except re.error:
            _PATTERNS[p] = None  # an RE2-only construct: not checkable with Python's re
    return _PATTERNS[p]


def _fmt(path: JsonPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def _type_ok(value: Any, t: str) -> bool:
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    return True


def _field_path(fp: str) -> JsonPath:
    parts: list[str | int] = []
    for m in re.finditer(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\['([^']*)'\]", fp):
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(m.group(3))
    return tuple(parts)


class StructuralValidator:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def validate(
        self, obj: dict[str, Any], cel_memo: dict[tuple[str, str], CelOutcome] | None = None
    ) -> ValidationResult:
        result = ValidationResult(cel_memo=cel_memo if cel_memo is not None else {})
        value = copy.deepcopy(obj)
        props = self.schema.get("properties", {})
        for key in list(value):
            if key in _ROOT_META:
                continue
            if key not in props and not self.schema.get("x-kubernetes-preserve-unknown-fields"):
                result.errors.append(SchemaError("schema-unknown-field", (key,), f"unknown field {key!r}"))
        root = {k: v for k, v in self.schema.items() if k != "properties"}
        root["properties"] = {k: v for k, v in props.items() if k not in _ROOT_META}
        root["x-kubernetes-preserve-unknown-fields"] = True  # root unknowns handled above
        self._node(value, root, (), result, report=result.errors.append)
        return result

    def _node(
        self,
        value: Any,
        schema: dict[str, Any],
        path: JsonPath,
        result: ValidationResult,
        report: Callable[[SchemaError], None],
        value_only: bool = False,
    ) -> Any:
        if value is None:
            return (
                None  # a null of a non-nullable field is pruned by the API server; a nullable null is valid
            )
        if schema.get("x-kubernetes-int-or-string") and not (
            isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
        ):
            report(SchemaError("schema-invalid", path, f"{_fmt(path)}: must be an integer or a string"))
            return value
        t = schema.get("type")
        if t and not _type_ok(value, t):
            report(
                SchemaError(
                    "schema-invalid",
                    path,
                    f"{_fmt(path)}: must be of type {t}, got {type(value).__name__} {value!r}"[:240],
                )
            )
            return value
        if isinstance(value, dict):
            self._object(value, schema, path, result, report, value_only)
        elif isinstance(value, list):
            self._array(value, schema, path, result, report, value_only)
        else:
            self._scalar(value, schema, path, report)
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(repr(v) for v in schema["enum"][:12])
            report(
                SchemaError(
                    "schema-invalid", path, f"{_fmt(path)}: {value!r} is not one of [{allowed}]"[:300]
                )
            )
        self._combinators(value, schema, path, result, report)
        if not value_only:
            for v in schema.get("x-kubernetes-validations", ()):
                self._cel(value, v, path, result, report)
        return value

    def _object(
        self,
        value: dict[str, Any],
        schema: dict[str, Any],
        path: JsonPath,
        result: ValidationResult,
        report: Callable[[SchemaError], None],
        value_only: bool,
    ) -> None:
        props: dict[str, Any] = schema.get("properties", {})
        if not value_only:
            for key, sub in props.items():
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
        for key in [k for k, v in value.items() if v is None and not props.get(k, {}).get("nullable")]:
            if not value_only:
                del value[key]
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
            "x-kubernetes-embedded-resource"
        )
        for key, item in list(value.items()):
            if key in props:
                self._node(item, props[key], (*path, key), result, report, value_only)
            elif isinstance(additional, dict):
                self._node(item, additional, (*path, key), result, report, value_only)
            elif (
                additional is True
                or preserve
                or value_only
                or (schema.get("x-kubernetes-embedded-resource") and key in _ROOT_META)
            ):
                continue
            elif props or additional is False or schema.get("type") == "object":
                report(
                    SchemaError("schema-unknown-field", (*path, key), f"unknown field {_fmt((*path, key))!r}")
                )
        for req in schema.get("required", ()):
            if req not in value:
                report(SchemaError("schema-invalid", path, f"{_fmt(path)}: missing required field {req!r}"))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            report(
                SchemaError(
                    "schema-invalid", path, f"{_fmt(path)}: needs at least {schema['minProperties']} fields"
                )
            )
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            report(
                SchemaError(
                    "schema-invalid", path, f"{_fmt(path)}: allows at most {schema['maxProperties']} fields"
                )
            )

    def _array(
        self,
        value: list[Any],
        schema: dict[str, Any],
        path: JsonPath,
        result: ValidationResult,
        report: Callable[[SchemaError], None],
        value_only: bool,
    ) -> None:
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                value[i] = self._node(item, items, (*path, i), result, report, value_only)
        if "minItems" in schema and len(value) < schema["minItems"]:
            report(
                SchemaError(
                    "schema-invalid", path, f"{_fmt(path)}: needs at least {schema['minItems']} items"
                )
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            report(
                SchemaError(
                    "schema-invalid", path, f"{_fmt(path)}: allows at most {schema['maxItems']} items"
                )
            )
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: list[Any] = []
            for i, item in enumerate(value):
                if item in seen:
                    report(
                        SchemaError(
                            "schema-invalid", (*path, i), f"{_fmt((*path, i))}: duplicate entry {item!r}"
                        )
                    )
                seen.append(item)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys", ())
            seen_keys: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                k = tuple(repr(item.get(key)) for key in keys)
                if k in seen_keys:
                    desc = ", ".join(f"{key}={item.get(key)!r}" for key in keys)
                    report(
                        SchemaError(
                            "schema-invalid", (*path, i), f"{_fmt((*path, i))}: duplicate entry ({desc})"
                        )
                    )
                seen_keys.add(k)

    def _scalar(
        self, value: Any, schema: dict[str, Any], path: JsonPath, report: Callable[[SchemaError], None]
    ) -> None:
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                report(
                    SchemaError("schema-invalid", path, f"{_fmt(path)}: longer than {schema['maxLength']}")
                )
            if "minLength" in schema and len(value) < schema["minLength"]:
                report(
                    SchemaError("schema-invalid", path, f"{_fmt(path)}: shorter than {schema['minLength']}")
                )
            pat = schema.get("pattern")
            if pat:
                compiled = _pattern(pat)
                if compiled is not None and not compiled.search(value):
                    report(
                        SchemaError("schema-invalid", path, f"{_fmt(path)}: {value!r} does not match {pat!r}")
                    )
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = schema.get("minimum"), schema.get("maximum")
            if lo is not None and (value < lo or (schema.get("exclusiveMinimum") is True and value == lo)):
                report(
                    SchemaError("schema-invalid", path, f"{_fmt(path)}: {value} is below the minimum {lo}")
                )
            if hi is not None and (value > hi or (schema.get("exclusiveMaximum") is True and value == hi)):
                report(
                    SchemaError("schema-invalid", path, f"{_fmt(path)}: {value} is above the maximum {hi}")
                )

    def _matches(self, value: Any, sub: dict[str, Any], path: JsonPath, result: ValidationResult) -> bool:
        errs: list[SchemaError] = []
        self._node(value, sub, path, result, errs.append, value_only=True)
        return not errs

    def _combinators(
        self,
        value: Any,
        schema: dict[str, Any],
        path: JsonPath,
        result: ValidationResult,
        report: Callable[[SchemaError], None],
    ) -> None:
        for sub in schema.get("allOf", ()):
            self._node(value, sub, path, result, report, value_only=True)
        if "anyOf" in schema and not any(self._matches(value, s, path, result) for s in schema["anyOf"]):
            report(
                SchemaError("schema-invalid", path, f"{_fmt(path)}: matches none of the allowed alternatives")
            )
        if "oneOf" in schema:
            n = sum(self._matches(value, s, path, result) for s in schema["oneOf"])
            if n != 1:
                report(
                    SchemaError(
                        "schema-invalid",
                        path,
                        f"{_fmt(path)}: must match exactly one alternative (matches {n})",
                    )
                )
        if "not" in schema and self._matches(value, schema["not"], path, result):
            report(SchemaError("schema-invalid", path, f"{_fmt(path)}: matches a forbidden alternative"))

    def _cel(
        self,
        value: Any,
        rule: dict[str, Any],
        path: JsonPath,
        result: ValidationResult,
        report: Callable[[SchemaError], None],
    ) -> None:
        text = rule.get("rule", "")
        key = (text, json.dumps(value, sort_keys=True, separators=(",", ":")))
        outcome = result.cel_memo.get(key)
        if outcome is None:
            outcome = result.cel_memo[key] = CEL.evaluate(text, value)
        if outcome.passed is None:
            result.cel_skipped.append(f"{text} ({outcome.reason})")
            return
        result.cel_evaluated += 1
        if outcome.passed:
            return
        message = None
        if rule.get("messageExpression"):
            message = CEL.evaluate_expression(rule["messageExpression"], value)
        message = message or rule.get("message") or f"failed rule: {text}"
        where = (*path, *_field_path(rule.get("fieldPath", "")))
        report(SchemaError("schema-cel", where, f"{_fmt(where)}: {message} (rule: {text})"[:400]))

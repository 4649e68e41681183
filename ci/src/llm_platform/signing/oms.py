"""The OpenSSF Model Signing (OMS v1.0) statement of a modelcar: one resource per model file (its path under
/models and sha256, serialization `files`), the subject digest the sha256 over those digests in order.

Built from the layer annotations (`signing.files`), so signing reads no weight byte; `model_signing verify
key <dir> --signature <bundle> --public_key <pub>` checks it against the files of an unpacked image.
"""

from __future__ import annotations

import hashlib
from typing import Any

from llm_platform.signing.dsse import statement
from llm_platform.signing.files import LayerFile

PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_SERIALIZATION = {"method": "files", "hash_type": "sha256", "allow_symlinks": False}


def _root_digest(digests: list[str]) -> str:
    hasher = hashlib.sha256()
    for hex_digest in digests:
        hasher.update(bytes.fromhex(hex_digest))
    return hasher.hexdigest()


def oms_statement(model_name: str, files: list[LayerFile]) -> dict[str, Any]:
    ordered = sorted(files, key=lambda entry: entry.sort_key)
    resources = [{"name": f.path, "algorithm": "sha256", "digest": f.sha256} for f in ordered]
    return statement(
        [{"name": model_name, "digest": {"sha256": _root_digest([f.sha256 for f in ordered])}}],
        PREDICATE_TYPE,
        {"serialization": dict(_SERIALIZATION), "resources": resources},
    )


def oms_problems(signed: dict[str, Any], files: list[LayerFile]) -> list[str]:
    """What in a verified OMS statement disagrees with the image's files (empty: it covers exactly them)."""
    if signed.get("predicateType") != PREDICATE_TYPE:
        return [f"predicate type {signed.get('predicateType')!r}, expected {PREDICATE_TYPE}"]
    try:
        resources = signed["predicate"]["resources"]
        listed = {r["name"]: (r["algorithm"], r["digest"]) for r in resources}
        subject = signed["subject"]
        declared_root = subject[0]["digest"]["sha256"]
        root = _root_digest([r["digest"] for r in resources])
    except (KeyError, TypeError, IndexError, ValueError):
        return ["statement is not an OMS v1.0 statement (subject, predicate.resources)"]
    problems = []
    if len(subject) != 1 or declared_root != root:
        problems.append("subject digest is not the digest of the listed resources")
    if len(listed) != len(resources):
        problems.append("a resource is listed twice")
    expected = {f.path: ("sha256", f.sha256) for f in files}
    missing = sorted(set(expected) - set(listed))
    extra = sorted(set(listed) - set(expected))
    changed = sorted(p for p in set(expected) & set(listed) if listed[p] != expected[p])
    for label, paths in (
        ("not in the bundle", missing),
        ("not in the image", extra),
        ("sha256 differs", changed),
    ):
        if paths:
            problems.append(f"{label}: {', '.join(paths[:5])}{' …' if len(paths) > 5 else ''}")
    return problems

"""`llm-platform bump`: write a new modelcar digest into the GitOps tree and the model lock, exactly and safely.

Parse -> locate -> splice the digest's characters -> re-parse and prove nothing else changed ->
check the post-condition (no mention of the repository is left without the new digest, `postcheck`)
-> commit with trailers -> push with fetch/re-derive/retry, guarded by a compare-and-swap on the
digests read, so no concurrent update is ever overwritten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_platform.bump.result import BumpResult, ReferenceChange
    from llm_platform.bump.service import bump_model

__all__ = ["DEFAULT_MAX_ATTEMPTS", "BumpResult", "ReferenceChange", "bump_model"]

# Push attempts before a bump gives up; here so the CLI can show it without importing the bump machinery.
DEFAULT_MAX_ATTEMPTS = 10


def __getattr__(name: str) -> Any:
    # The public API, imported on first use: `import llm_platform.bump` stays cheap for the CLI.
    if name == "bump_model":
        from llm_platform.bump.service import bump_model

        return bump_model
    if name in ("BumpResult", "ReferenceChange"):
        from llm_platform.bump import result

        return getattr(result, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

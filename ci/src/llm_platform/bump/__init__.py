"""`llm-platform bump`: write a new modelcar digest into the GitOps tree and the model lock, exactly and safely.

Parse -> locate -> splice the digest's characters -> re-parse and prove nothing else changed ->
commit with trailers -> push with fetch/re-derive/retry, guarded by a compare-and-swap on the
digests read, so no concurrent update is ever overwritten.
"""

from llm_platform.bump.result import BumpResult, ReferenceChange
from llm_platform.bump.service import bump_model

__all__ = ["BumpResult", "ReferenceChange", "bump_model"]

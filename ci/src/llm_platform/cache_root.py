"""Where llm-platform keeps its caches (digest cache, CRDs, CRD schemas): one root for all of them."""

from __future__ import annotations

import os
from collections.abc import Mapping


def cache_root(environ: Mapping[str, str] | None = None) -> str:
    """$LLM_PLATFORM_CACHE_DIR, else $XDG_CACHE_HOME/llm-platform, else ~/.cache/llm-platform."""
    env = os.environ if environ is None else environ
    if env.get("LLM_PLATFORM_CACHE_DIR"):
        return env["LLM_PLATFORM_CACHE_DIR"]
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "llm-platform")

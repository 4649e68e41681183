"""Environments: a name such as `dev` selects the OpenTofu root `envs/<name>` under infra/."""

from __future__ import annotations

import re

from llm_platform.errors import InputError

ENVS_DIR = "envs"
# A plain directory name: no path separators, no leading dot, so a name can never leave infra/envs/.
_ENV_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def environment_root(env: str) -> str:
    """The OpenTofu root of environment `env`, relative to infra/ (`dev` -> `envs/dev`)."""
    if not _ENV_NAME.fullmatch(env):
        raise InputError(
            f"--env {env!r}: expected an environment name such as dev (the root infra/envs/<env>): "
            "letters, digits, '.', '-' and '_', starting with a letter or digit"
        )
    return f"{ENVS_DIR}/{env}"

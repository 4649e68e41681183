"""Environment names select an OpenTofu root under infra/envs/ and can never name another path."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_platform.errors import InputError
from llm_platform.tofu.environments import environment_root

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools


def test_shipped_environments_map_to_their_roots(repo_root: Path) -> None:
    for env in ("dev", "prod"):
        assert environment_root(env) == f"envs/{env}"
        assert (repo_root / "infra" / environment_root(env) / "main.tf").is_file()


@pytest.mark.parametrize(
    "bad", ["", "../prod", "dev/../../etc", ".hidden", "..", "dev/eu", " dev", "dev ", "-rf", "dev\n"]
)
def test_names_that_are_paths_or_odd_are_refused_naming_the_flag(bad: str) -> None:
    with pytest.raises(InputError, match="--env"):
        environment_root(bad)

"""The harness itself: the registry really serves the OCI distribution API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.support.registry import Registry


def test_registry_answers_v2(registry: Registry) -> None:
    with urllib.request.urlopen(f"{registry.url}/v2/_catalog") as resp:
        assert json.load(resp) == {"repositories": []}


def test_auth_registry_demands_credentials(auth_registry: Registry) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{auth_registry.url}/v2/")
    assert info.value.code == 401
    assert "Basic" in info.value.headers["WWW-Authenticate"]

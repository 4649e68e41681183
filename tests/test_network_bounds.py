"""Network time bounds against a real docker-registry behind the fault proxy: a registry that stalls mid-response
fails the request (or retries, then fails) within the configured bound; a 429/503 is retried after its
Retry-After, up to a bound, beyond which it gives up at once; `--timeout` and $LLM_PLATFORM_HTTP_TIMEOUT set the
bounds of a publish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from llm_platform.cli import main
from llm_platform.errors import InputError, RegistryError
from llm_platform.network import TIMEOUT_ENV, GiveUp, NetworkBounds, RetryBudget, parse_retry_after
from llm_platform.registry.client import RegistryClient
from tests.support.blobs import random_blob
from tests.support.fault_proxy import HELD, STALLED, Fault, FaultProxy, Rule
from tests.support.images import BaseLayout
from tests.support.publish_fixtures import generated_model, publish_argv
from tests.support.registry import Registry


@pytest.fixture
def proxies(registry: Registry) -> Iterator[list[FaultProxy]]:
    started: list[FaultProxy] = []
    yield started
    for proxy in started:
        proxy.stop()


def proxy_for(registry: Registry, proxies: list[FaultProxy], rule: Rule) -> FaultProxy:
    proxy = FaultProxy(registry.host, rule=rule).start()
    proxies.append(proxy)
    return proxy


# -- the bounds themselves ---------------------------------------------------------------------------------
def test_default_bounds_give_up_on_a_stall_well_under_two_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    bounds = NetworkBounds.from_timeout()
    assert bounds == NetworkBounds(connect=15, metadata=20, read=60, retry_after_max=60, retry_budget=90)
    # A request that stalls, retries and stalls again gives up once the retry budget is spent: 90 s.
    budget = RetryBudget(bounds, retries=4)
    delay = budget.failed(stalled=bounds.read)
    budget.waited(delay)
    assert budget.timeout(bounds.read) == pytest.approx(bounds.retry_budget - bounds.read - delay)
    with pytest.raises(GiveUp, match="retry budget is 90 s"):
        budget.failed(stalled=budget.timeout(bounds.read))
    with RegistryClient("127.0.0.1:5000") as client:
        assert client.bounds == bounds


def test_timeout_sets_every_bound_and_the_environment_is_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert NetworkBounds.from_timeout(2) == NetworkBounds(
        connect=2, metadata=2, read=2, retry_after_max=3, retry_budget=3
    )
    assert (
        NetworkBounds.from_timeout(300).metadata == 20 and NetworkBounds.from_timeout(300).retry_budget == 450
    )
    monkeypatch.setenv(TIMEOUT_ENV, "5")
    assert NetworkBounds.from_timeout().read == 5
    assert NetworkBounds.from_timeout(7).read == 7  # the flag wins
    with RegistryClient("127.0.0.1:5000") as client:
        assert client.bounds.read == 5
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(InputError, match=rf"\${TIMEOUT_ENV}='soon': not a number of seconds"):
        NetworkBounds.from_timeout()
    with pytest.raises(InputError, match="--timeout 0"):
        NetworkBounds.from_timeout(0)


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after(" 0 ", now=now) == 0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0  # in the past: now
    for unreadable in (None, "", "-5", "1.5", "soon", "Wed, 99 Foo 2015 07:28:00 GMT"):
        assert parse_retry_after(unreadable, now=now) is None


def test_a_retry_after_over_the_bound_gives_up_and_waits_count_against_the_budget() -> None:
    bounds = NetworkBounds(retry_after_max=10, retry_budget=15)
    budget = RetryBudget(bounds, retries=9, backoff=0.01)
    with pytest.raises(GiveUp, match="asked to retry after 11 s, longer than the 10 s this waits"):
        budget.failed(retry_after=11)
    budget = RetryBudget(bounds, retries=9, backoff=0.01)
    assert budget.failed(retry_after=10) == 10  # max(backoff, Retry-After)
    budget.waited(10)
    with pytest.raises(GiveUp, match=r"gave up after 2 attempts, 10\.0 s stalled or waiting"):
        budget.failed(retry_after=10)
    with pytest.raises(GiveUp, match=r"gave up after 1 attempt$"):
        RetryBudget(bounds, retries=0).failed()


# -- Retry-After against the registry ------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_a_429_or_503_is_retried_after_its_retry_after(
    registry: Registry, proxies: list[FaultProxy], form: str
) -> None:
    if form == "seconds":
        fault = Fault(status=429, headers={"Retry-After": "1"})
    else:  # whole seconds: 2 s ahead is a wait of more than 1 s
        fault = Fault(status=503, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)})
    proxy = proxy_for(registry, proxies, lambda m, p, n: fault if m == "HEAD" and n == 0 else None)
    with RegistryClient(proxy.host, retries=2, backoff=0.01) as client:
        assert client.blob_size("demo/ra", "sha256:" + "0" * 64) is None
    (first, *_), (second, *_) = proxy.arrivals[:2]
    assert [s for _, _, s in proxy.seen[:2]] == [fault.status, 404]
    waited = second - first
    print(f"Retry-After ({form}): waited {waited:.2f} s")
    assert waited >= 1.0  # not the 0.01 s backoff


def test_a_retry_after_beyond_the_bound_gives_up_at_once(
    registry: Registry, proxies: list[FaultProxy]
) -> None:
    proxy = proxy_for(registry, proxies, lambda m, p, n: Fault(status=429, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    with RegistryClient(proxy.host, retries=4) as client, pytest.raises(RegistryError) as err:
        client.list_tags("demo/ra")
    elapsed = time.monotonic() - started
    print(f"Retry-After 3600: gave up after {elapsed:.2f} s")
    assert elapsed < 1.0 and len(proxy.arrivals) == 1
    message = str(err.value)
    assert "HTTP 429" in message and "asked to retry after 3600 s, longer than the 60 s this waits" in message
    assert err.value.status == 429


def test_a_publish_waits_out_a_retry_after_and_succeeds(
    tmp_path: Path,
    registry: Registry,
    proxies: list[FaultProxy],
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = generated_model(tmp_path, "bounded-model", {"weights.safetensors": 2_000_000, "config.json": 99})
    retry, fired = Fault(status=503, headers={"Retry-After": "1"}), []

    def first_manifest_put(method: str, path: str, count: int) -> Fault | None:
        if method == "PUT" and "/manifests/sha256:" in path and not fired:
            fired.append(path)
            return retry
        return None

    proxy = proxy_for(registry, proxies, first_manifest_put)
    code = main(
        publish_argv(
            model, busybox_layout.ref, f"{proxy.host}/m/bounded-model", "--no-cache", "--timeout", "5"
        )
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"{proxy.host}/m/bounded-model@sha256:")
    puts = [t for t, m, p in proxy.arrivals if m == "PUT" and "/manifests/sha256:" in p]
    assert len(puts) == 2 and puts[1] - puts[0] >= 1.0
    print(f"publish: manifest PUT retried after {puts[1] - puts[0]:.2f} s")


# -- stalls ---------------------------------------------------------------------------------------------------
def test_a_response_that_stalls_mid_body_fails_within_the_bound(
    registry: Registry, proxies: list[FaultProxy]
) -> None:
    """The registry sends 20 bytes of the tag list, then nothing: with --timeout 1 the request stalls 1 s, is
    retried with what is left of the 1.5 s retry budget, stalls again, and fails: 1.5 s in all."""
    proxy = proxy_for(registry, proxies, lambda m, p, n: Fault(stall_after=20) if "/tags/list" in p else None)
    started = time.monotonic()
    with (
        RegistryClient(proxy.host, retries=4, backoff=0.05, bounds=NetworkBounds.from_timeout(1)) as client,
        pytest.raises(RegistryError) as err,
    ):
        client.list_tags("demo/stalled")
    elapsed = time.monotonic() - started
    print(f"stalled tag list: failed after {elapsed:.2f} s")
    assert 1.4 <= elapsed < 2.5
    assert [s for _, _, s in proxy.seen] == [STALLED, STALLED]
    message = str(err.value)
    assert "list tags of demo/stalled" in message and "stalled: sent nothing for" in message
    assert "(ReadTimeout)" in message
    assert "retry budget is 1.5 s" in message and f"--timeout or ${TIMEOUT_ENV}" in message


def test_an_upload_the_registry_stops_reading_fails_within_the_bound(
    registry: Registry, proxies: list[FaultProxy]
) -> None:
    proxy = proxy_for(registry, proxies, lambda m, p, n: Fault(hold=True) if m == "PATCH" else None)
    blob = random_blob(3_000_000)
    started = time.monotonic()
    with (
        RegistryClient(proxy.host, retries=4, backoff=0.05, bounds=NetworkBounds.from_timeout(1)) as client,
        pytest.raises(RegistryError) as err,
    ):
        client.upload_blob("demo/held", blob, label="models/held.safetensors")
    elapsed = time.monotonic() - started
    print(f"held upload: failed after {elapsed:.2f} s")
    assert elapsed < 2.5
    assert "upload of models/held.safetensors failed" in str(err.value) and "stalled" in str(err.value)
    assert [s for m, _, s in proxy.seen if m == "PATCH"] == [HELD, HELD]
    with RegistryClient(registry.host) as direct:
        assert direct.blob_size("demo/held", blob.digest) is None


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_publish_to_a_stalling_registry_fails_within_the_bound_and_tags_nothing(
    tmp_path: Path,
    registry: Registry,
    proxies: list[FaultProxy],
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    """Every blob upload stalls (the registry reads the request and answers nothing): with a 2 s bound the
    publish fails in about the 3 s retry budget, not 600 s per attempt; nothing is tagged."""
    model = generated_model(tmp_path, "stalled-model", {"weights.safetensors": 3_000_000, "config.json": 77})
    proxy = proxy_for(registry, proxies, lambda m, p, n: Fault(hold=True) if m == "PATCH" else None)
    extra = ["--timeout", "2"] if how == "flag" else []
    if how == "environment":
        monkeypatch.setenv(TIMEOUT_ENV, "2")
    started = time.monotonic()
    code = main(
        publish_argv(model, busybox_layout.ref, f"{proxy.host}/m/stalled-model", "--no-cache", *extra)
    )
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    print(f"publish to a stalling registry ({how}): exit {code} after {elapsed:.2f} s")
    assert (code, out) == (1, "")
    errors = [line for line in err.splitlines() if line.startswith("llm-platform: error:")]
    assert len(errors) == 1 and "stalled" in errors[0] and "retry budget is 3 s" in errors[0], err
    assert elapsed < 6
    with RegistryClient(registry.host) as client:
        assert client.list_tags("m/stalled-model") == []

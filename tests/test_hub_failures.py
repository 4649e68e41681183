"""Every Hugging Face Hub failure is one line naming the repo, the file and what to do (exit 2 for what the spec
or the token must fix, 1 otherwise), never the token, and within the network bounds: driven through the real
huggingface_hub client against the loopback hub stand-in, which injects the faults."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_platform.errors import InputError, PlatformError
from llm_platform.modelcar.source import ModelSource, huggingface_source
from llm_platform.modelcar.spec import load_spec
from llm_platform.network import NetworkBounds
from tests.support import hf_hub as hub_support
from tests.support.hf_hub import HubFault, HubRepo, HubServer
from tests.support.images import BaseLayout
from tests.support.registry import free_port

hf_hub = hub_support.hf_hub

CLI = str(Path(sys.executable).parent / "llm-platform")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_TestToken_never_shown_77"
WEIGHTS = "model.safetensors"
FILES = {"config.json": b'{"architectures": ["Tiny"]}', WEIGHTS: os.urandom(300_000)}
WHERE = "huggingface.co/example-org/tiny-model@main"
BOUNDS = NetworkBounds.from_timeout(1)  # stall 1 s, retry budget 1.5 s: the faults fail fast


@pytest.fixture
def repo(hf_hub: HubServer) -> HubRepo:
    return hf_hub.add(HubRepo("example-org/tiny-model", COMMIT, dict(FILES), branches={"main": COMMIT}))


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    spec = tmp_path / "tiny-hub.yaml"
    spec.write_text(
        "huggingface:\n  repo: example-org/tiny-model\n  revision: main\n"
        "  allow_patterns: ['*.safetensors', '*.json']\n  ignore_patterns: []\n"
        "image:\n  repository: registry.example.com/modelcars/tiny-hub\n"
        "serving:\n  served_model_name: tiny-hub\n"
    )
    return spec


def listing(spec: Path, endpoint: str, tmp_path: Path, bounds: NetworkBounds = BOUNDS) -> ModelSource:
    return huggingface_source(
        load_spec(spec), token=TOKEN, cache_dir=tmp_path / "hf-cache", endpoint=endpoint, bounds=bounds
    )


def read_all(source: ModelSource) -> None:
    """Download and read every file, as a build does."""
    for model_file in source.files:
        with model_file.open() as reader:
            while reader.read(1 << 20):
                pass


def one_line(error: PlatformError) -> str:
    message = str(error)
    assert "\n" not in message and TOKEN not in message
    return message


# (fault, error class, what the line says): the model-info API call
INFO_FAILURES = {
    "500 every time": (
        HubFault("info", "status", status=500, times=None),
        PlatformError,
        "model info: the hub answered HTTP 500; gave up after 2 attempts",
    ),
    "429 with a Retry-After beyond the bound": (
        HubFault("info", "status", status=429, headers={"Retry-After": "3600"}),
        PlatformError,
        "model info: rate limited by the hub (HTTP 429); asked to retry after 3600 s, longer than the 1.5 s "
        "this waits; wait, then run again",
    ),
    "not JSON (a captive portal)": (
        HubFault("info", "not-json"),
        PlatformError,
        "model info: the hub's answer is not the JSON it should be (a proxy or a captive portal? check "
        "HF_ENDPOINT)",
    ),
    "401": (
        HubFault("info", "status", status=401),
        InputError,
        "model info: the hub refused the token (HTTP 401): check HF_TOKEN or --hf-token",
    ),
    "403 gated": (
        HubFault("info", "status", status=403, headers={"X-Error-Code": "GatedRepo"}),
        InputError,
        "gated repo: accept its terms on the hub and pass a token",
    ),
}


@pytest.mark.parametrize("case", list(INFO_FAILURES))
def test_a_failing_model_info_is_one_line(
    tmp_path: Path, hf_hub: HubServer, repo: HubRepo, spec_path: Path, case: str
) -> None:
    fault, kind, text = INFO_FAILURES[case]
    hf_hub.faults.append(fault)
    started = time.monotonic()
    with pytest.raises(PlatformError) as err:
        listing(spec_path, hf_hub.endpoint, tmp_path)
    elapsed = time.monotonic() - started
    print(f"model info, {case}: {type(err.value).__name__} after {elapsed:.2f} s")
    assert type(err.value) is kind
    assert one_line(err.value).startswith(WHERE) and text in str(err.value)
    assert elapsed < BOUNDS.retry_budget + 0.5


def test_an_unreachable_hub_is_one_line_within_the_bound(tmp_path: Path, spec_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(PlatformError) as err:
        listing(spec_path, f"http://127.0.0.1:{free_port()}", tmp_path)
    elapsed = time.monotonic() - started
    print(f"unreachable hub: failed after {elapsed:.2f} s")
    message = one_line(err.value)
    assert type(err.value) is PlatformError
    assert message.startswith(f"{WHERE}: model info: cannot reach the hub (ConnectError")
    assert "check the network and the hub's status (or HF_ENDPOINT), then run again" in message
    assert elapsed < BOUNDS.retry_budget + 0.5


@pytest.mark.parametrize(
    ("fault", "waits"),
    [
        (HubFault("info", "status", status=500), 0.0),  # once: retried after the backoff
        (HubFault("info", "status", status=429, headers={"Retry-After": "1"}), 1.0),
        (HubFault("get", "status", status=429, headers={"Retry-After": "1"}, path=WEIGHTS), 1.0),
        (HubFault("get", "drop", after=100_000, path=WEIGHTS), 0.0),  # downloaded again
    ],
    ids=["info 500 once", "info 429 Retry-After 1", "download 429 Retry-After 1", "download dropped once"],
)
def test_a_transient_fault_is_retried_and_the_files_are_exact(
    tmp_path: Path, hf_hub: HubServer, repo: HubRepo, spec_path: Path, fault: HubFault, waits: float
) -> None:
    hf_hub.faults.append(fault)
    started = time.monotonic()
    source = listing(spec_path, hf_hub.endpoint, tmp_path, NetworkBounds.from_timeout(5))
    read_all(source)  # the verifying reader checks size and sha256 of every file
    elapsed = time.monotonic() - started
    print(f"{fault.route} {fault.kind} {fault.status}: recovered in {elapsed:.2f} s")
    assert fault.times == 0  # it was injected
    assert elapsed >= waits


# (fault, error class, what the line says after "<repo>: download of model.safetensors: ")
DOWNLOAD_FAILURES = {
    "stalled mid-body": (
        HubFault("get", "stall", after=100_000, times=None, path=WEIGHTS),
        PlatformError,
        "stalled after 100000 bytes: nothing for 1 s (ReadTimeout); gave up after 1 attempt, 1.0 s stalled or "
        "waiting: the retry budget is 1.5 s",
    ),
    "dropped every time": (
        HubFault("get", "drop", after=100_000, times=None, path=WEIGHTS),
        PlatformError,
        # huggingface_hub writes 10 MB at a time: a drop before that restarts the download, not resumes it
        "connection dropped after 100000 bytes (RemoteProtocolError); gave up after 2 attempts",
    ),
    "metadata HEAD stalled": (
        HubFault("head", "stall", times=None, path=WEIGHTS),
        PlatformError,
        "no answer from the hub for 1.0 s (refused, cut or stalled); gave up after 1 attempt",
    ),
    "metadata HEAD 500 every time": (
        HubFault("head", "status", status=500, times=None, path=WEIGHTS),
        PlatformError,
        "the hub answered HTTP 500; gave up after",
    ),
    "429 with a Retry-After beyond the bound": (
        HubFault("get", "status", status=429, headers={"Retry-After": "3600"}, times=None, path=WEIGHTS),
        PlatformError,
        "the hub answered HTTP 429; asked to retry after 3600 s, longer than the 1.5 s this waits",
    ),
    "500": (
        HubFault("get", "status", status=500, times=None, path=WEIGHTS),
        PlatformError,
        "the hub answered HTTP 500; check the network and the hub's status (or HF_ENDPOINT), then run again",
    ),
    "404 (listed, then gone)": (
        HubFault("get", "status", status=404, headers={"X-Error-Code": "EntryNotFound"}, path=WEIGHTS),
        InputError,
        "the file is not in the repo at this revision (check the spec's patterns)",
    ),
    "403": (
        HubFault("get", "status", status=403, path=WEIGHTS),
        InputError,
        "access denied (HTTP 403): the token has no access to this repo",
    ),
}


@pytest.mark.parametrize("case", list(DOWNLOAD_FAILURES))
def test_a_failing_download_is_one_line_naming_the_file_within_the_bound(
    tmp_path: Path, hf_hub: HubServer, repo: HubRepo, spec_path: Path, case: str
) -> None:
    fault, kind, text = DOWNLOAD_FAILURES[case]
    source = listing(spec_path, hf_hub.endpoint, tmp_path)
    hf_hub.faults.append(fault)
    started = time.monotonic()
    with pytest.raises(PlatformError) as err:
        read_all(source)
    elapsed = time.monotonic() - started
    print(f"download, {case}: {type(err.value).__name__} after {elapsed:.2f} s")
    assert type(err.value) is kind
    message = one_line(err.value)
    assert message.startswith(f"{WHERE}: download of {WEIGHTS}: ")
    assert text in message
    # huggingface_hub alone would retry 5 times, 429s for an hour each: the bound holds it to the budget.
    assert elapsed < BOUNDS.retry_budget + 1.0


def test_a_hub_gone_after_the_listing_is_one_line_naming_the_file(
    tmp_path: Path, hf_hub: HubServer, repo: HubRepo, spec_path: Path
) -> None:
    source = listing(spec_path, hf_hub.endpoint, tmp_path)
    hf_hub.stop()  # connections refused from now on
    started = time.monotonic()
    with pytest.raises(PlatformError) as err:
        read_all(source)
    elapsed = time.monotonic() - started
    print(f"hub gone: failed after {elapsed:.2f} s")
    message = one_line(err.value)
    assert message.startswith(f"{WHERE}: download of config.json: no answer from the hub")
    assert "then run again" in message and elapsed < BOUNDS.retry_budget + 1.0


def test_offline_mode_without_the_file_cached_is_an_input_error(
    tmp_path: Path, hf_hub: HubServer, repo: HubRepo, spec_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    source = listing(spec_path, hf_hub.endpoint, tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets
    with pytest.raises(InputError) as err:
        read_all(source)
    assert one_line(err.value) == (
        f"{WHERE}: download of config.json: HF_HUB_OFFLINE is set and the file is not in the hub cache: unset "
        "it, or take the files from a directory with --source-dir"
    )
    with pytest.raises(InputError, match="model info: HF_HUB_OFFLINE is set"):
        listing(spec_path, hf_hub.endpoint, tmp_path)


def test_the_cli_build_bounds_a_stalled_hub_download_with_timeout(
    tmp_path: Path, hf_hub: HubServer, repo: HubRepo, spec_path: Path, busybox_layout: BaseLayout
) -> None:
    """`--timeout` reaches the hub's byte stream: a download that stalls fails in 1.5 s, one line, exit 1."""
    hf_hub.faults.append(HubFault("get", "stall", after=1000, times=None, path=WEIGHTS))
    env = {
        **os.environ,
        "HF_ENDPOINT": hf_hub.endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    started = time.monotonic()
    proc = subprocess.run(
        [
            CLI,
            "modelcar",
            "build",
            str(spec_path),
            "--base",
            busybox_layout.ref,
            "--output",
            str(tmp_path / "out"),
            "--timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - started
    print(f"cli build, stalled hub download: exit {proc.returncode} after {elapsed:.2f} s")
    assert (proc.returncode, proc.stdout) == (1, "")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("llm-platform: error:")]
    assert errors == [
        f"llm-platform: error: {WHERE}: download of {WEIGHTS}: stalled after 1000 bytes: nothing for 1 s "
        "(ReadTimeout); gave up after 1 attempt, 1.0 s stalled or waiting: the retry budget is 1.5 s (1.5 x "
        "--timeout or $LLM_PLATFORM_HTTP_TIMEOUT); check the network and the hub's status (or HF_ENDPOINT), "
        "then run again"
    ]
    assert "Traceback" not in proc.stderr and TOKEN not in proc.stderr
    assert not (tmp_path / "out").exists()
    assert elapsed < 10  # interpreter start, base load, the 1.5 s budget

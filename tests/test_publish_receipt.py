"""Publish receipts: an unchanged re-publish answers from its receipt, after checking every input file and
the registry, without importing the publish stacks; any changed input or registry state takes the full path.

Each publish runs the real CLI in a subprocess against a real docker-registry. Inputs must be older than the
receipt's racy window (1 s) to get a receipt, hence the sleeps after writing them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests.support.images import BaseLayout, busybox_layout  # noqa: F401
from tests.support.publish_fixtures import AccessLog, GeneratedModel, generated_model
from tests.support.registry import Registry

from llm_platform.modelcar import receipt

HEAVY = ["pydantic", "httpx", "typer", "ruamel.yaml", "llm_platform.modelcar.publish"]
# Runs the CLI's entry point and reports, on its last stderr line, which heavy stacks it imported.
_RUN = (
    "import json, sys\n"
    "from llm_platform.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"print('IMPORTED ' + json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\n"
    "sys.exit(code)\n"
)
FRESH = receipt.RACY_WINDOW_NS / 1e9 + 0.2


class Publisher:
    def __init__(self, model: GeneratedModel, base: BaseLayout, registry: Registry, cache: Path) -> None:
        self.model, self.base, self.registry, self.cache = model, base, registry, cache
        self.target = f"{registry.host}/modelcars/receipt-model"

    def args(self, *extra: str) -> list[str]:
        return ["modelcar", "publish", str(self.model.spec), "--source-dir", str(self.model.source),
                "--base", self.base.ref, "--to", self.target, "--cache-dir", str(self.cache), *extra]

    def __call__(self, *extra: str, env: dict[str, str] | None = None) -> tuple[str, str, list[str]]:
        proc = subprocess.run([sys.executable, "-c", _RUN, *self.args(*extra)], capture_output=True, text=True,
                              timeout=300, env={**os.environ, **(env or {})}, check=False)
        assert proc.returncode == 0, proc.stderr
        err, _, imported = proc.stderr.rpartition("IMPORTED ")
        return proc.stdout, err, json.loads(imported)

    def receipts(self) -> list[Path]:
        return sorted((self.cache / receipt.RECEIPTS_DIR).glob("*.json"))


@pytest.fixture
def publisher(tmp_path: Path, registry: Registry, busybox_layout: BaseLayout) -> Publisher:  # noqa: F811
    base = BaseLayout(tmp_path / "base")  # a copy of its own: one test rewrites the base's index
    shutil.copytree(busybox_layout.path, base.path)
    model = generated_model(tmp_path, "receipt-model", {"model.safetensors": 300_000, "config.json": 120})
    time.sleep(FRESH)
    return Publisher(model, base, registry, tmp_path / "cache")


def full_path(err: str) -> bool:
    return "publishing receipt-model to" in err and "already published" not in err


def test_republish_answers_from_the_receipt_without_importing_the_publish_stacks(
    publisher: Publisher, registry: Registry
) -> None:
    out, err, imported = publisher()
    assert full_path(err)
    assert len(publisher.receipts()) == 1
    reference = out.strip()

    log = AccessLog(registry)
    log.mark()
    again, err, imported = publisher()
    assert again == out  # the same single stdout line
    assert "already published" in err and reference in err
    assert imported == []  # no pydantic, httpx, typer, ruamel or publish core
    requests = log.since_mark()
    assert requests and {method for method, _, _ in requests} <= {"GET", "HEAD"}  # checked, nothing written
    digest = reference.split("@")[1]
    assert ("GET", f"/v2/modelcars/receipt-model/manifests/{digest}", 200) in requests
    assert sum(1 for m, path, status in requests if m == "HEAD" and "/blobs/" in path and status == 200) == 4


@pytest.mark.parametrize("change", ["touch a model file", "add a model file", "edit the spec", "retag the base"])
def test_a_changed_input_takes_the_full_path(publisher: Publisher, change: str) -> None:
    out, _, _ = publisher()
    model = publisher.model
    if change == "touch a model file":  # same bytes, new mtime: the receipt cannot know the bytes are the same
        os.utime(model.source / "config.json")
    elif change == "add a model file":
        (model.source / "tokenizer.json").write_text("{}")
    elif change == "edit the spec":
        model.spec.write_text(model.spec.read_text() + "# a comment changes no byte of the image\n")
    else:
        index_path = publisher.base.path / "index.json"
        index_path.write_text(index_path.read_text())
    again, err, imported = publisher()
    assert full_path(err), err
    assert "pydantic" in imported
    if change == "add a model file":
        assert again != out
    else:
        assert again == out


def test_the_registry_is_checked_not_trusted(publisher: Publisher, registry: Registry) -> None:
    out, _, _ = publisher()
    reference = out.strip()
    repository, digest = "modelcars/receipt-model", reference.split("@")[1]
    manifest = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})).read())
    lost = max(manifest["layers"], key=lambda layer: layer["size"])["digest"]
    deleted = urllib.request.urlopen(urllib.request.Request(
        f"{registry.url}/v2/{repository}/blobs/{lost}", method="DELETE"))
    assert deleted.status == 202

    log = AccessLog(registry)
    log.mark()
    again, err, _ = publisher()
    assert full_path(err), err
    assert again == out
    assert lost in log.committed_digests()  # the lost layer went up again

    # A tag moved to another image: the full path puts it back.
    tag = f"{repository}:receipt-model-{'0123456789ab'}"
    other = json.loads(json.dumps(manifest))
    other["annotations"] = {**manifest.get("annotations", {}), "moved": "yes"}
    put = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag.split(':')[1]}", method="PUT",
        data=json.dumps(other).encode(), headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert urllib.request.urlopen(put).status == 201
    time.sleep(FRESH)  # the first re-publish rewrote the receipt only if its inputs were not fresh; they are not
    again, err, _ = publisher()
    assert full_path(err), err
    assert again == out
    head = urllib.request.urlopen(urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag.split(':')[1]}", method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}))
    assert head.headers["Docker-Content-Digest"] == digest


def test_fresh_inputs_get_no_receipt(publisher: Publisher) -> None:
    publisher.model.rewrite("model.safetensors", seed=7)  # written just now: inside the racy window
    publisher()
    assert publisher.receipts() == []
    _, err, _ = publisher()
    assert full_path(err)


def test_json_and_no_cache_bypass_receipts(publisher: Publisher) -> None:
    out, _, _ = publisher()
    printed, err, imported = publisher("--json")
    assert full_path(err) and "pydantic" in imported
    result = json.loads(printed)
    assert result["reference"] == out.strip() and result["bytes_uploaded"] == 0
    _, err, _ = publisher("--no-cache")
    assert full_path(err)


def test_the_token_is_neither_stored_nor_part_of_the_key(publisher: Publisher) -> None:
    secret = "hf_receipt_test_secret_value_0123456789"
    out, _, _ = publisher("--hf-token", secret)
    [written] = publisher.receipts()
    assert secret not in written.read_text() and secret not in written.name
    # Another token value, same command otherwise: the same receipt answers.
    again, _, imported = publisher(f"--hf-token=other-{secret}")
    assert again == out and imported == []
    again, _, imported = publisher("--hf-token", "third-value")
    assert again == out and imported == []


def test_a_proxy_in_the_environment_takes_the_full_path(publisher: Publisher) -> None:
    out, _, _ = publisher()
    # httpx honours proxies and the receipt's plain http.client would not: no receipt with a proxy set.
    assert receipt.republish(publisher.args()[2:], cwd=os.getcwd(),
                             environ={**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9"}) is None
    assert receipt.republish(publisher.args()[2:], cwd=os.getcwd(), environ=dict(os.environ)) == out.strip()


def test_a_damaged_receipt_takes_the_full_path_and_is_rewritten(publisher: Publisher) -> None:
    out, _, _ = publisher()
    [written] = publisher.receipts()
    written.write_text('{"format": 1, "reference": ')  # cut short, as by a full disk
    again, err, _ = publisher()
    assert full_path(err) and again == out
    again, err, imported = publisher()
    assert "already published" in err and again == out and imported == []

"""`modelcar publish --sign-key` and `bump --verify-key`, against the real local registry and real git: a
digest reaches git only when its image verifies with the key, and a refused bump writes and commits nothing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from llm_platform.cli import main
from llm_platform.modelcar.prepare import SourceOptions
from llm_platform.modelcar.publish import PushOptions, publish_modelcar
from llm_platform.signing import SIGNING_KEY_ENV, SIGNING_KEY_PASSWORD_ENV
from tests.support.bump_fixture import commit_all, git, git_env, write_tree
from tests.support.images import BaseLayout
from tests.support.publish_fixtures import generated_model
from tests.support.registry import Registry
from tests.test_signing import PASSWORD, make_keys

FILES = {"model-00001-of-00001.safetensors": 200_000, "config.json": 40, "tokenizer.json": 900}


def _model(tmp_path: Path, registry: Registry, name: str) -> tuple[Path, Path, str]:
    """A generated model whose spec names the local registry's repository (bump checks the two agree)."""
    model = generated_model(tmp_path / name, name, FILES)
    repository = f"{registry.host}/modelcars/{name}"
    text = model.spec.read_text()
    model.spec.write_text(
        text.replace(f"us-central1-docker.pkg.dev/llm-platform-example/modelcars/{name}", repository)
    )
    return model.spec, model.source, repository


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _repo(tmp_path: Path, spec: Path, repository: str) -> tuple[Path, dict[str, str]]:
    """A GitOps checkout pointing at an old digest of `repository`, with the model's spec, committed."""
    env = git_env(tmp_path)
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main", env=env)
    old = "sha256:" + "0" * 64
    write_tree(
        root,
        {
            f"modelcars/{spec.name}": spec.read_text(),
            "gitops/model.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n  image: {repository}@{old}\n",
        },
    )
    commit_all(root, "fixture", env)
    return root, env


def test_a_signed_publish_bumps_and_an_unsigned_or_wrongly_signed_digest_is_refused_with_nothing_committed(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SIGNING_KEY_PASSWORD_ENV, PASSWORD)
    spec, source, repository = _model(tmp_path, registry, "gated")
    keys, other = make_keys(tmp_path / "keys"), make_keys(tmp_path / "other", "other")

    # Unsigned: a plain publish.
    unsigned = publish_modelcar(
        SourceOptions(spec=spec, source_dir=source, base=busybox_layout.ref),
        PushOptions(target=f"{repository}:unsigned"),
    ).reference
    # Signed: publish --sign-key, the same files plus one more (another digest).
    (source / "extra.json").write_text("{}")
    code, out, err = _cli(
        capsys,
        "modelcar", "publish", str(spec), "--source-dir", str(source), "--base", busybox_layout.ref,
        "--to", f"{repository}:signed", "--sign-key", str(keys.private), "--json",
    )  # fmt: skip
    assert code == 0, err
    published = json.loads(out)
    signed = published["reference"]
    assert [a["kind"] for a in published["signed"]["attachments"]] == [
        "signature",
        "oms",
        "provenance",
        "modelpack",
    ]
    assert PASSWORD not in out + err

    root, env = _repo(tmp_path, spec, repository)
    head = git(root, "rev-parse", "HEAD", env=env)
    base = ["bump", "--model", "gated", "--repo", str(root), "--commit"]
    for ref, key, why in [(unsigned, keys.public, "signature"), (signed, other.public, "signature")]:
        code, out, err = _cli(capsys, *base, "--ref", ref, "--verify-key", str(key))
        assert code == 1 and out == "", err
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"llm-platform: error: --ref {ref}: does not verify with {key.name}"), line
        assert "nothing was written" in line and f"{why}:" in line
        assert git(root, "rev-parse", "HEAD", env=env) == head
        assert git(root, "status", "--porcelain", env=env) == ""

    code, out, err = _cli(capsys, *base, "--ref", signed, "--verify-key", str(keys.public))
    assert code == 0, err
    assert git(root, "rev-parse", "HEAD", env=env) != head
    assert signed.split("@")[1] in (root / "gitops/model.yaml").read_text()


def test_the_repository_s_signing_config_makes_every_bump_verify(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """modelcars/signing.yaml names the key: a bump without --verify-key (the pipeline's) verifies too."""
    monkeypatch.setenv(SIGNING_KEY_PASSWORD_ENV, PASSWORD)
    spec, source, repository = _model(tmp_path, registry, "configured")
    keys = make_keys(tmp_path / "keys")
    unsigned = publish_modelcar(
        SourceOptions(spec=spec, source_dir=source, base=busybox_layout.ref), PushOptions(target=repository)
    ).reference
    root, env = _repo(tmp_path, spec, repository)
    write_tree(
        root,
        {
            "keys/cosign.pub": keys.public.read_text(),
            "modelcars/signing.yaml": "verify_key: keys/cosign.pub\n",
        },
    )
    commit_all(root, "signing key", env)
    head = git(root, "rev-parse", "HEAD", env=env)
    code, _, err = _cli(
        capsys, "bump", "--model", "configured", "--repo", str(root), "--commit", "--ref", unsigned
    )
    assert code == 1 and "does not verify with cosign.pub" in err
    assert git(root, "rev-parse", "HEAD", env=env) == head

    # Signed after the fact (`modelcar sign`), with the key from the environment: now it goes through.
    monkeypatch.setenv(SIGNING_KEY_ENV, keys.private.read_text())
    code, _, err = _cli(capsys, "modelcar", "sign", unsigned, "--spec", str(spec))
    assert code == 0, err
    code, _, err = _cli(
        capsys, "bump", "--model", "configured", "--repo", str(root), "--commit", "--ref", unsigned
    )
    assert code == 0, err

    (root / "modelcars/signing.yaml").write_text("verify_key: ../outside.pub\n")
    code, _, err = _cli(capsys, "bump", "--model", "configured", "--repo", str(root), "--ref", unsigned)
    assert (
        code == 2 and "modelcars/signing.yaml: verify_key '../outside.pub' is outside the repository" in err
    )


def test_a_bad_signing_key_or_password_fails_publish_before_anything_is_pushed(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, source, repository = _model(tmp_path, registry, "badkey")
    keys = make_keys(tmp_path / "keys")
    monkeypatch.setenv(SIGNING_KEY_PASSWORD_ENV, "wrong-canary-9d1c")
    code, out, err = _cli(
        capsys,
        "modelcar", "publish", str(spec), "--source-dir", str(source), "--base", busybox_layout.ref,
        "--to", repository, "--sign-key", str(keys.private),
    )  # fmt: skip
    assert code == 2 and out == "" and "wrong-canary-9d1c" not in err
    # Nothing reached the registry: the repository does not exist there.
    with pytest.raises(urllib.error.HTTPError) as unknown:
        urllib.request.urlopen(f"http://{registry.host}/v2/modelcars/badkey/tags/list", timeout=10)
    assert unknown.value.code == 404

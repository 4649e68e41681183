"""A model file is read only while it stays the file that was opened: one rewritten in place (same size, other
bytes) or replaced while a build or a publish reads it fails naming the file, and nothing is committed: no
manifest, no tag, no layout, no digest-cache record of it. An unreadable file is one input error naming it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import pytest

from llm_platform.cli import main
from llm_platform.errors import InputError
from llm_platform.modelcar.base_image import load_base
from llm_platform.modelcar.digest_cache import LayerDigestCache
from llm_platform.modelcar.image import plan_image
from llm_platform.modelcar.layout import write_layout
from llm_platform.modelcar.source import file_identity, local_source
from llm_platform.modelcar.spec import load_spec
from llm_platform.registry.client import RegistryClient
from tests.support.images import BaseLayout
from tests.support.publish_fixtures import (
    GeneratedModel,
    build_argv,
    generated_model,
    publish_argv,
    write_pattern,
)
from tests.support.registry import Registry

MiB = 1024 * 1024
VICTIM = "model-00001-of-00002.safetensors"
FILES = {VICTIM: 64 * MiB, "model-00002-of-00002.safetensors": 300_000, "config.json": 321}
REPOSITORY = "m/stable-model"
CLI = str(Path(sys.executable).parent / "llm-platform")


class RewriteMidRead(threading.Thread):
    """Changes `path` while this process reads it: as soon as a descriptor of it (in /proc/self/fd) has read a
    first part but not half of it, the file is rewritten in place with other bytes of the same size (the first
    write lands in one syscall: a writer and its bytes are ready before the watch starts), or replaced by a
    rename."""

    def __init__(self, path: Path, *, how: str = "in-place") -> None:
        super().__init__(name="rewrite-mid-read", daemon=True)
        self.path, self.how = path, how
        self.real = os.path.realpath(path)
        self.size = path.stat().st_size
        self.done = threading.Event()
        self.position = 0
        self._stop_at = time.monotonic() + 60
        self._fresh = path.parent.parent / (
            path.name + ".new"
        )  # same filesystem, not in the source directory
        if how == "in-place":
            self._block = other_bytes(1 << 20)
            self._writer = path.open("r+b", buffering=0)
        else:
            write_pattern(self._fresh, self.size, seed=99)

    def _position(self) -> int | None:
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") != self.real:
                    continue
                info = Path(f"/proc/self/fdinfo/{fd}").read_text()
            except OSError:
                continue
            match = re.search(r"^pos:\s+(\d+)", info, re.MULTILINE)
            if match and int(match.group(1)) > 0:
                return int(match.group(1))
        return None

    def run(self) -> None:
        while time.monotonic() < self._stop_at:
            position = self._position()
            if position is not None and position < self.size // 2:
                self.position = position
                if self.how == "in-place":
                    offset = 0
                    while offset < self.size:
                        offset += self._writer.write(self._block[: min(len(self._block), self.size - offset)])
                else:
                    os.replace(self._fresh, self.path)
                self.done.set()
                return
            time.sleep(0.0002)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_at = 0
        self.join(5)
        if self.how == "in-place":
            self._writer.close()
        self._fresh.unlink(missing_ok=True)


def other_bytes(size: int) -> bytes:
    return (b"rewritten mid-read " * (size // 19 + 1))[:size]


def write_pattern_in_place(path: Path, size: int) -> None:
    """Other bytes over the same file (same inode, same size, no truncation)."""
    with path.open("r+b") as out:
        out.write(other_bytes(size))


@pytest.fixture
def model(tmp_path: Path) -> GeneratedModel:
    return generated_model(tmp_path, "stable-model", FILES)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def registry_manifests(registry: Registry) -> list[str]:
    """Manifest revisions the registry stores for the repository (its filesystem, not its API)."""
    revisions = (
        registry.storage / "docker/registry/v2/repositories" / REPOSITORY / "_manifests/revisions/sha256"
    )
    return sorted(p.name for p in revisions.iterdir()) if revisions.is_dir() else []


def cache_records_of(cache: Path, path: Path) -> list[str]:
    """What the digest cache holds about the local file `path`: its identity records, its path record, and
    layer records of its model path."""
    recorded = LayerDigestCache(cache)
    real = os.path.realpath(path)
    return [
        *(key for key in recorded.files if key.endswith(":" + real)),
        *([real] if real in recorded.paths else []),
        *(key for key in recorded.layers if key.startswith(path.name + "\0")),
    ]


def changed_line(model: GeneratedModel, err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("llm-platform: error:")]
    assert len(lines) == 1, err
    assert f"{model.source}/{VICTIM}: changed while it was read (size/mtime/ctime/inode)" in lines[0], err
    return lines[0]


@pytest.mark.parametrize(
    ("warm", "how", "upload_mode"),
    [
        (False, "in-place", "chunked"),  # the layer's digest is learnt while it streams
        (False, "replaced", "chunked"),
        (True, "in-place", "chunked"),  # digest known from a build: streamed without hashing
        (True, "in-place", "monolithic"),  # one PUT with the digest: its body never ends
    ],
)
def test_a_publish_whose_file_changes_mid_read_fails_and_commits_nothing(
    tmp_path: Path,
    registry: Registry,
    model: GeneratedModel,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    warm: bool,
    how: str,
    upload_mode: str,
) -> None:
    cache = tmp_path / "cache"
    victim = model.source / VICTIM
    if warm:
        code, _, err = run_cli(
            capsys, *build_argv(model, busybox_layout.ref, tmp_path / "built", "--cache-dir", str(cache))
        )
        assert code == 0, err
        before = cache_records_of(cache, victim)
        assert before  # the build recorded the file
    else:
        before = []

    with RewriteMidRead(victim, how=how) as rewrite:
        code, out, err = run_cli(
            capsys,
            *publish_argv(
                model,
                busybox_layout.ref,
                f"{registry.host}/{REPOSITORY}",
                "--cache-dir",
                str(cache),
                "--upload-mode",
                upload_mode,
            ),
        )
    assert rewrite.done.is_set() and 0 < rewrite.position < FILES[VICTIM] // 2
    assert (code, out) == (1, "")
    changed_line(model, err)
    with RegistryClient(registry.host) as client:
        assert client.list_tags(REPOSITORY) == []  # no tag
    assert registry_manifests(registry) == []  # and no manifest
    identity = file_identity(victim)
    recorded = LayerDigestCache(cache)
    assert identity not in recorded.files  # nothing recorded for the file as it is now
    assert recorded.paths.get(os.path.realpath(victim)) != identity
    assert sorted(cache_records_of(cache, victim)) == sorted(before)  # nor anything new about it

    # Once the file is stable, the same command publishes it (what the message says to do).
    code, out, err = run_cli(
        capsys,
        *publish_argv(model, busybox_layout.ref, f"{registry.host}/{REPOSITORY}", "--cache-dir", str(cache)),
    )
    assert code == 0, err
    assert out.startswith(f"{registry.host}/{REPOSITORY}@sha256:")
    assert len(registry_manifests(registry)) == 1


def test_a_build_whose_file_changes_mid_read_fails_and_leaves_no_layout(
    tmp_path: Path, model: GeneratedModel, busybox_layout: BaseLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, output = tmp_path / "cache", tmp_path / "out"
    with RewriteMidRead(model.source / VICTIM) as rewrite:
        code, out, err = run_cli(
            capsys, *build_argv(model, busybox_layout.ref, output, "--cache-dir", str(cache))
        )
    assert rewrite.done.is_set()
    assert (code, out) == (1, "")
    changed_line(model, err)
    assert not output.exists()
    assert not [p for p in output.parent.iterdir() if p.name.startswith(f".{output.name}.partial-")]
    assert cache_records_of(cache, model.source / VICTIM) == []


def test_a_file_read_without_changing_passes_the_check(
    tmp_path: Path, model: GeneratedModel, busybox_layout: BaseLayout
) -> None:
    """Only a change fails: reading twice, and reading a file whose atime moves, both pass."""
    spec = load_spec(model.spec)
    source = local_source(spec, model.source)
    victim = next(f for f in source.files if f.path == VICTIM)
    for _ in range(2):
        with victim.open() as reader:
            while reader.read(1 << 20):
                pass
    os.utime(model.source / "config.json", (0, (model.source / "config.json").stat().st_mtime))  # atime only
    plan = plan_image(spec, source, load_base(busybox_layout.ref))
    assert write_layout(plan, tmp_path / "out") == plan.manifest_digest


@pytest.mark.parametrize("what", ["directory", "missing"])
def test_a_file_that_became_a_directory_or_vanished_is_an_input_error_naming_it(
    tmp_path: Path, model: GeneratedModel, busybox_layout: BaseLayout, what: str
) -> None:
    spec = load_spec(model.spec)
    source = local_source(spec, model.source)  # listed while it was a file
    target = model.source / "config.json"
    target.unlink()
    if what == "directory":
        target.mkdir()
    plan = plan_image(spec, source, load_base(busybox_layout.ref))
    expected = "is a directory, not a model file" if what == "directory" else "cannot read the model file"
    with pytest.raises(InputError, match=re.escape(f"{model.source}/config.json: {expected}")):
        write_layout(plan, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unreadable_file_is_one_input_error_naming_it(
    model: GeneratedModel, busybox_layout: BaseLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    """chmod 000: refused when the source is listed, before anything is built or pushed. Root reads any file,
    so as root the build runs without the capabilities that override permission bits (setpriv)."""
    victim = model.source / "config.json"
    victim.chmod(0)
    argv = build_argv(model, busybox_layout.ref, model.source.parent / "out", "--no-cache")
    try:
        if os.geteuid() != 0:
            code, out, err = run_cli(capsys, *argv)
        else:
            setpriv = shutil.which("setpriv")
            assert setpriv, "setpriv (util-linux) is needed to drop root's CAP_DAC_OVERRIDE"
            proc = subprocess.run(
                [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--", CLI, *argv],
                capture_output=True,
                text=True,
                check=False,
            )
            code, out, err = proc.returncode, proc.stdout, proc.stderr
    finally:
        victim.chmod(0o644)
    assert (code, out) == (2, ""), err
    assert err.strip().splitlines() == [
        f"llm-platform: error: {victim}: cannot read the model file (permission denied)"
    ]
    assert not (model.source.parent / "out").exists()


def test_a_file_unreadable_at_open_is_one_input_error_naming_it(model: GeneratedModel) -> None:
    """Listed readable, unreadable when opened (a race the listing cannot see)."""
    source = local_source(load_spec(model.spec), model.source)
    config = next(f for f in source.files if f.path == "config.json")
    (model.source / "config.json").unlink()
    (model.source / "config.json").symlink_to("config.json")  # a loop: the open fails (ELOOP)
    with pytest.raises(
        InputError, match=re.escape(f"{model.source}/config.json: cannot read the model file")
    ):
        config.open()


def test_the_digest_cache_and_the_stable_read_share_one_identity(model: GeneratedModel) -> None:
    path = model.source / "config.json"
    assert LayerDigestCache.file_key(path) == file_identity(path)
    before = file_identity(path)
    write_pattern_in_place(path, FILES["config.json"])
    assert file_identity(path) != before

"""The per-file tar layer: exact precomputed size, normalised headers that GNU tar and Python read,
PAX only where USTAR cannot hold a name or size."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from llm_platform.errors import PlatformError
from llm_platform.modelcar import tar_layer
from tests.support.tools import require_tool

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools

CASES = [
    ("config.json", b'{"a": 1}\n'),
    ("empty.txt", b""),
    ("exactly-512.bin", b"x" * 512),
    ("deep/nested/dir/shard-00001.safetensors", bytes(range(256)) * 9),
    ("long/" + "n" * 140 + ".json", b"long name"),
    ("ünïcødé/名前.txt", "ünïcødé".encode()),
]


def _layer(path: str, data: bytes) -> bytes:
    return b"".join(tar_layer.stream_layer([(path, len(data), lambda: io.BytesIO(data))]))


@pytest.mark.parametrize(("path", "data"), CASES)
def test_layer_has_the_precomputed_size_and_normalised_members(path: str, data: bytes) -> None:
    blob = _layer(path, data)
    assert len(blob) == tar_layer.layer_size([(path, len(data))])
    assert len(blob) % 512 == 0 and blob.endswith(b"\0" * 1024)
    with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names, key=lambda n: n.count("/"))
        assert names[-1] == f"models/{path}"
        for member in members:
            assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
            assert member.mode == (0o755 if member.isdir() else 0o644)
        assert archive.extractfile(names[-1]).read() == data  # type: ignore[union-attr]
        needs_pax = len(f"models/{path}".encode()) > 100 or not path.isascii()
        assert bool(members[-1].pax_headers) == needs_pax


def test_gnu_tar_reads_the_layers(tmp_path: Path) -> None:
    tar = require_tool("tar")
    for path, data in CASES:
        layer = tmp_path / "layer.tar"
        layer.write_bytes(_layer(path, data))
        listing = subprocess.run(
            [tar, "--list", "--verbose", "--numeric-owner", "--full-time", "-f", str(layer)],
            capture_output=True,
            text=True,
            check=True,
            env={"LC_ALL": "C.UTF-8", "TZ": "UTC"},
        ).stdout.splitlines()
        assert re.fullmatch(
            rf"-rw-r--r-- 0/0 +{len(data)} 1970-01-01 00:00:00 models/{re.escape(path)}", listing[-1]
        )
        assert all(re.match(r"drwxr-xr-x 0/0 +0 1970-01-01 00:00:00 models/", line) for line in listing[:-1])
        out = tmp_path / "x"
        out.mkdir()
        subprocess.run([tar, "-xf", str(layer), "-C", str(out)], check=True)
        assert (out / "models" / path).read_bytes() == data
        subprocess.run(["rm", "-rf", str(out)], check=True)


def test_sizes_of_8_gib_and_more_use_pax_and_base256() -> None:
    size = 8 * 2**30 + 1
    header = tar_layer._header("models/huge.safetensors", size=size)
    assert len(header) == 3 * 512  # PAX header + record block + USTAR header
    with tarfile.open(fileobj=io.BytesIO(header)) as archive:
        member = archive.next()
        assert member is not None and member.size == size and member.pax_headers["size"] == str(size)
    # The USTAR size field itself carries the size in GNU base-256 (scanners that ignore PAX sizes).
    assert tarfile.nti(header[1024 + 124 : 1024 + 136]) == size
    assert tar_layer.layer_size([("huge.safetensors", size)]) == 3 * 512 + 512 + size + (-size % 512) + 1024


def test_layer_bytes_depend_only_on_path_and_content() -> None:
    first = _layer("a/b.bin", b"same bytes")
    assert first == _layer("a/b.bin", b"same bytes")
    assert hashlib.sha256(first).digest() != hashlib.sha256(_layer("a/c.bin", b"same bytes")).digest()
    assert first != _layer("a/b.bin", b"other bytes")


def test_a_file_that_changed_size_is_an_error_not_a_truncated_layer() -> None:
    with pytest.raises(PlatformError, match="shorter than its recorded 10 bytes"):
        b"".join(tar_layer.stream_layer([("f", 10, lambda: io.BytesIO(b"12345"))]))
    with pytest.raises(PlatformError, match="longer than its recorded 3 bytes"):
        b"".join(tar_layer.stream_layer([("f", 3, lambda: io.BytesIO(b"12345"))]))


@pytest.mark.parametrize(
    ("path", "data"), [c for c in CASES if len(f"models/{c[0]}") <= 100 and c[0].isascii()]
)
def test_layer_is_byte_identical_to_normalised_gnu_tar(tmp_path: Path, path: str, data: bytes) -> None:
    # An independent implementation of the same normalisation: USTAR, numeric owner 0/0, mtime 0,
    # 0755 dirs / 0644 files, parents listed first, no padding to a 10 KiB record.
    tar = require_tool("tar")
    root = tmp_path / "root"
    target = root / "models" / path
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    target.chmod(0o644)
    parts = f"models/{path}".split("/")
    members = ["/".join(parts[: i + 1]) + "/" for i in range(len(parts) - 1)] + [f"models/{path}"]
    for member in members[:-1]:
        (root / member).chmod(0o755)
    subprocess.run(
        [
            tar,
            "--format=ustar",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mtime=@0",
            "--blocking-factor=1",
            "--no-recursion",
            "-cf",
            str(tmp_path / "gnu.tar"),
            *members,
        ],
        cwd=root,
        check=True,
    )
    assert _layer(path, data) == (tmp_path / "gnu.tar").read_bytes()


def test_golden_layer_digest() -> None:
    # Pinned: a change here changes every modelcar digest on every machine.
    data = b'{"a": 1}\n'
    assert hashlib.sha256(_layer("config.json", data)).hexdigest() == (
        "67eb529f1b1c431207103bcce487216e5055c40872716b45cfd182cce1c1e719"
    )

"""Publish receipts: what a verified `modelcar publish` produced, keyed by its command line, so that the
same command with unchanged inputs confirms the image in the registry and stops.

Why: a full publish that uploads nothing still imports typer, pydantic and httpx, parses the spec, loads
the base image and plans the image (~0.35 s, most of it imports). With a receipt, a re-publish is a few
stat() calls and a handful of HTTP requests. So the reading side of this module imports the standard
library only (a test holds it to that), and it trusts nothing it cannot check:

- the key hashes the command line (with the --hf-token value blanked), the working directory, the
  environment that changes what gets published, and the identity of the code that builds images;
- every input file and directory must still have the identity (device, inode, size, mtime, ctime) it had
  before the publish that wrote the receipt read it. A directory's mtime changes when an entry is added,
  removed or renamed, so a new file shows without walking the tree;
- the registry must still serve the image: every tag resolves to the digest, the manifest's bytes hash to
  the digest and every blob is there at its size (the check a full publish ends with).

Anything else (no receipt, an unreadable one, an authentication challenge, a proxy in the environment, a
network error) answers None, and the full publish runs. Receipts are written only for sources that
cannot change behind those identities: --source-dir, or a spec pinned to a commit. Inputs modified less
than a second before the publish get no receipt: a rewrite within the same timestamp tick could keep a
file's identity (git's "racily clean" problem).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence

from llm_platform.cache_root import cache_root

# os.path, not pathlib, and no typing at run time: every import here is start-up time of a re-publish.

FORMAT = 1
RECEIPTS_DIR = "receipts"
KEEP_RECEIPTS = 256
RACY_WINDOW_NS = 1_000_000_000
# Environment that changes what a publish produces (credentials only change who may push).
KEYED_ENV = ("HF_ENDPOINT",)
SECRET_OPTIONS = ("--hf-token",)
# Options whose output a receipt cannot reproduce, that ask for no cache, or that hand over a password on
# stdin (a registry that needs one refuses the receipt's anonymous check; and stdin must be read).
BYPASS_OPTIONS = ("--json", "--no-cache", "--help", "-h", "--password-stdin")
PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

Identity = list[int]


def _option_value(args: Sequence[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def cache_dir_for(args: Sequence[str], environ: Mapping[str, str]) -> str:
    return _option_value(args, "--cache-dir") or cache_root(environ)


def _blank_secrets(args: Sequence[str]) -> list[str]:
    blanked: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:  # the value of a secret option: already stood for by ""
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name in SECRET_OPTIONS:  # `--hf-token=X` and `--hf-token X` key alike
            blanked += [name, ""]
            hide_next = not eq
            continue
        blanked.append(arg)
    return blanked


def _code_identity() -> list[list[object]]:
    """Size and mtime of the modules that decide an image's bytes: an upgraded or edited builder may build
    another image from the same inputs, so its receipts no longer apply."""
    here = os.path.dirname(os.path.abspath(__file__))
    identity: list[list[object]] = []
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(here, name))
            identity.append([name, st.st_size, st.st_mtime_ns])
    return identity


def invocation_key(args: Sequence[str], cwd: str, environ: Mapping[str, str]) -> str:
    material = {
        "format": FORMAT,
        "args": _blank_secrets(args),
        "cwd": cwd,
        "env": {name: environ.get(name) for name in KEYED_ENV},
        "code": _code_identity(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def identity(path: str) -> Identity | None:
    """What changes when a file or directory is written, replaced or re-pointed (a symlink: both ends)."""
    try:
        st, lst = os.stat(path), os.lstat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
            lst.st_ino, lst.st_mtime_ns, lst.st_ctime_ns]


def input_paths(spec: str, source_dir: str | None, base_layout: str | None) -> list[str]:
    """The spec, the base layout's index, and every directory and file under the source directory."""
    paths = [os.path.realpath(spec)]
    if base_layout is not None:
        paths.append(os.path.realpath(os.path.join(base_layout, "index.json")))
    if source_dir is not None:
        seen: set[tuple[int, int]] = set()
        for directory, dirnames, filenames in os.walk(os.path.realpath(source_dir), followlinks=True):
            st = os.stat(directory)
            if (st.st_dev, st.st_ino) in seen:  # a symlink loop: walked once is enough
                dirnames.clear()
                continue
            seen.add((st.st_dev, st.st_ino))
            paths.append(directory)
            paths.extend(os.path.join(directory, name) for name in filenames)
    return paths


def snapshot(paths: Iterable[str]) -> dict[str, Identity | None]:
    return {path: identity(path) for path in paths}


def write(
    args: Sequence[str],
    *,
    cwd: str,
    environ: Mapping[str, str],
    before: Mapping[str, Identity | None],
    started_ns: int,
    scheme: str,
    host: str,
    repository: str,
    digest: str,
    tags: Sequence[str],
    reference: str,
) -> str | None:
    """Record a verified publish; nothing when an input changed during it, is missing, or is too fresh."""
    after = snapshot(before)
    if after != dict(before) or any(ident is None for ident in after.values()):
        return None
    newest = max((max(ident[3], ident[4], ident[6], ident[7]) for ident in after.values() if ident), default=0)
    if newest >= started_ns - RACY_WINDOW_NS:
        return None
    directory = os.path.join(cache_dir_for(args, environ), RECEIPTS_DIR)
    receipt = {
        "format": FORMAT,
        "reference": reference,
        "scheme": scheme,
        "host": host,
        "repository": repository,
        "digest": digest,
        "tags": list(tags),
        "inputs": after,
    }
    try:
        os.makedirs(directory, exist_ok=True)
        name = f"{invocation_key(args, cwd, environ)}.json"
        target, staging = os.path.join(directory, name), os.path.join(directory, f".{name}.{os.getpid()}")
        with open(staging, "w") as out:
            json.dump(receipt, out)
        os.replace(staging, target)
        _prune(directory)
    except OSError:
        return None  # a receipt is an optimisation: never fail a publish over it
    return target


def _prune(directory: str) -> None:
    receipts = [os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json")]
    receipts.sort(key=lambda path: os.stat(path).st_mtime_ns)
    for old in receipts[:-KEEP_RECEIPTS]:
        try:
            os.unlink(old)
        except FileNotFoundError:
            pass


def _load(path: str) -> dict[str, object] | None:
    try:
        with open(path) as source:
            data = json.load(source)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    text_fields = ("reference", "scheme", "host", "repository", "digest")
    if not all(isinstance(data.get(name), str) for name in text_fields) or data["scheme"] not in ("http", "https"):
        return None
    tags, inputs = data.get("tags"), data.get("inputs")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) or not isinstance(inputs, dict):
        return None
    if not str(data["reference"]).endswith("@" + str(data["digest"])):
        return None
    return data


def _served(scheme: str, host: str, repository: str, digest: str, tags: Sequence[str]) -> bool:
    """The registry serves `digest` under every tag, byte-exact, with every blob at its size (anonymously)."""
    connection_type = http.client.HTTPConnection if scheme == "http" else http.client.HTTPSConnection
    connection = connection_type(host, timeout=10.0)

    def ask(method: str, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection.request(method, path, headers={"Accept": OCI_MANIFEST, "User-Agent": "llm-platform"})
        response = connection.getresponse()
        return response.status, response.headers, response.read()

    try:
        for tag in tags:
            status, headers, _ = ask("HEAD", f"/v2/{repository}/manifests/{tag}")
            if status != 200 or headers.get("Docker-Content-Digest") != digest:
                return False
        status, _, body = ask("GET", f"/v2/{repository}/manifests/{digest}")
        if status != 200 or "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            return False
        manifest = json.loads(body)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            status, headers, _ = ask("HEAD", f"/v2/{repository}/blobs/{descriptor['digest']}")
            if status != 200 or headers.get("Content-Length") != str(descriptor["size"]):
                return False
        return True
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        return False
    finally:
        connection.close()


def republish(args: Sequence[str], *, cwd: str, environ: Mapping[str, str]) -> str | None:
    """The reference a previous publish with these arguments produced, when its inputs are unchanged and
    the registry still serves it; else None. `args` follow `modelcar publish`."""
    if any(arg in BYPASS_OPTIONS for arg in args) or any(environ.get(name) for name in PROXY_ENV):
        return None
    started = time.monotonic()
    path = os.path.join(cache_dir_for(args, environ), RECEIPTS_DIR, f"{invocation_key(args, cwd, environ)}.json")
    receipt = _load(path)
    if receipt is None:
        return None
    inputs = receipt["inputs"]
    assert isinstance(inputs, dict)
    if any(identity(name) != recorded for name, recorded in inputs.items()):
        return None
    tags = receipt["tags"]
    assert isinstance(tags, list)
    if not _served(str(receipt["scheme"]), str(receipt["host"]), str(receipt["repository"]),
                   str(receipt["digest"]), tags):
        return None
    reference = str(receipt["reference"])
    print(f"{reference} is already published (tags: {', '.join(tags)}): inputs unchanged since the publish "
          f"that built it, image verified in the registry in {time.monotonic() - started:.2f}s; nothing to upload",
          file=sys.stderr)
    return reference

"""`modelcar sign` and `modelcar verify` against a real docker-registry (2.8: no referrers API, so the
referrers tag stands in): signature, OMS bundle, SLSA provenance and ModelPack manifest; verification that
fails for an unsigned image, another key, a tampered signature or payload; the OMS bundle checked by the
PyPI `model_signing` tool against the files skopeo and umoci pull out of the image; no key material anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from llm_platform.cli import main
from llm_platform.modelcar.prepare import SourceOptions
from llm_platform.modelcar.publish import PushOptions, publish_modelcar
from llm_platform.oci import ANNOTATION_FILES
from llm_platform.signing import SIGNING_KEY_ENV, SIGNING_KEY_PASSWORD_ENV
from tests.support.images import BaseLayout, skopeo_copy
from tests.support.publish_fixtures import AccessLog, GeneratedModel, generated_model
from tests.support.registry import Registry
from tests.support.tools import require_tool, run

FIXTURES = Path(__file__).parent / "fixtures" / "modelpack"
MODELPACK_SCHEMA_SHA256 = "baae67bdb551798cc63c39884ae30871392b42e2b91cc0ac9734f4a42f2a92b9"
PASSWORD = "canary-Pa55word-7f3e91"  # must never show up in output, logs, images or files
CONFIG_JSON = {"model_type": "qwen2", "torch_dtype": "bfloat16", "num_parameters": 1_543_714_304}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class KeyPair:
    private: Path  # encrypted PKCS#8 PEM (password PASSWORD)
    public: Path
    key: ec.EllipticCurvePrivateKey


def make_keys(directory: Path, name: str = "signing") -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private = directory / f"{name}.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    public = directory / f"{name}.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private, public, key)


@dataclass(frozen=True)
class Published:
    model: GeneratedModel
    reference: str  # REGISTRY/REPOSITORY@sha256:...
    digest: str
    repository: str
    manifest_body: bytes

    @property
    def manifest(self) -> dict:
        return json.loads(self.manifest_body)

    @property
    def model_layers(self) -> list[dict]:
        return [
            x
            for x in self.manifest["layers"]
            if "io.llm-platform.modelcar.file.path" in (x.get("annotations") or {})
        ]


def publish(
    tmp_path: Path,
    registry: Registry,
    base: BaseLayout,
    name: str = "signed-model",
    max_layers: int | None = None,
) -> Published:
    files = {"model-00001-of-00002.safetensors": 700_000, "model-00002-of-00002.safetensors": 300_000}
    files |= {"config.json": 10, "tokenizer.json": 2000, "sub/vocab.txt": 500, "sub.txt": 30}
    model = generated_model(tmp_path / name, name, files)
    (model.source / "config.json").write_text(json.dumps(CONFIG_JSON))
    result = publish_modelcar(
        SourceOptions(spec=model.spec, source_dir=model.source, base=base.ref, max_layers=max_layers),
        PushOptions(target=f"{registry.host}/modelcars/{name}"),
    )
    body = registry_get(registry, f"/v2/modelcars/{name}/manifests/{result.digest}")
    return Published(model, result.reference, result.digest, f"modelcars/{name}", body)


def registry_get(registry: Registry, path: str, accept: str = OCI_MANIFEST) -> bytes:
    import urllib.request

    request = urllib.request.Request(f"{registry.url}{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def registry_put_manifest(registry: Registry, repository: str, reference: str, body: bytes) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        data=body,
        method="PUT",
        headers={"Content-Type": OCI_MANIFEST},
    )
    urllib.request.urlopen(request, timeout=10).close()


def registry_put_blob(registry: Registry, repository: str, data: bytes) -> str:
    import urllib.request

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"{registry.url}/v2/{repository}/blobs/uploads/", data=b"", method="POST")
    with urllib.request.urlopen(start, timeout=10) as response:
        location = response.headers["Location"]
    separator = "&" if "?" in location else "?"
    url = location if location.startswith("http") else registry.url + location
    put = urllib.request.Request(
        f"{url}{separator}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    urllib.request.urlopen(put, timeout=10).close()
    return digest


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def sign(capsys: pytest.CaptureFixture[str], published: Published, keys: KeyPair) -> dict:
    code, out, err = cli(
        capsys,
        "modelcar",
        "sign",
        published.reference,
        "--spec",
        str(published.model.spec),
        "--key",
        str(keys.private),
    )
    assert code == 0, err
    return json.loads(out)


def verify(
    capsys: pytest.CaptureFixture[str], published: Published, public: Path, *extra: str
) -> tuple[int, list[str]]:
    code, out, err = cli(capsys, "modelcar", "verify", published.reference, "--key", str(public), *extra)
    assert code in (0, 1), err
    return code, out.splitlines()


def referrers_index(registry: Registry, published: Published) -> dict:
    tag = published.digest.replace(":", "-")
    return json.loads(
        registry_get(
            registry, f"/v2/{published.repository}/manifests/{tag}", "application/vnd.oci.image.index.v1+json"
        )
    )


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY_PASSWORD_ENV, PASSWORD)


def test_signed_publish_verifies_lists_four_referrers_and_uploads_no_weight_twice(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    password_env: None,
) -> None:
    published = publish(tmp_path, registry, busybox_layout)
    keys = make_keys(tmp_path / "keys")
    log = AccessLog(registry)
    log.mark()
    result = sign(capsys, published, keys)

    assert result["reference"] == published.reference
    assert result["signature_tag"] == published.digest.replace(":", "-") + ".sig"
    assert result["referrers_tag"] == published.digest.replace(
        ":", "-"
    )  # docker-registry 2.8: no referrers API
    assert [a["kind"] for a in result["attachments"]] == ["signature", "oms", "provenance", "modelpack"]
    assert {a["indexed_by"] for a in result["attachments"]} == {"tag"}

    # No weight byte moved: only the small attachment blobs were committed, none of the image's layers, and
    # every committed blob is a few KiB at most.
    committed = log.committed_digests()
    image_blobs = {x["digest"] for x in published.manifest["layers"]} | {
        published.manifest["config"]["digest"]
    }
    assert committed and not set(committed) & image_blobs
    assert len(committed) == result["blobs_uploaded"]
    assert all(registry.blob_path(d).stat().st_size < 64 * 1024 for d in committed)
    assert result["bytes_uploaded"] == sum(registry.blob_path(d).stat().st_size for d in committed)

    code, lines = verify(capsys, published, keys.public, "--spec", str(published.model.spec))
    assert code == 0, lines
    assert [line.split(":")[0] for line in lines] == [
        "ok signature",
        "ok spec",
        "ok oms",
        "ok provenance",
        "ok modelpack",
        "ok referrers",
    ]

    # The referrers tag: an image index listing the four attachments by artifactType (and predicate type).
    index = referrers_index(registry, published)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    listed = sorted(
        (m["artifactType"], (m.get("annotations") or {}).get("dev.sigstore.bundle.predicateType", ""))
        for m in index["manifests"]
    )
    assert listed == [
        ("application/vnd.cncf.model.manifest.v1+json", ""),
        ("application/vnd.dev.cosign.artifact.sig.v1+json", ""),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "https://model_signing/signature/v1.0"),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "https://slsa.dev/provenance/v1"),
    ]
    for entry in index["manifests"]:
        body = registry_get(registry, f"/v2/{published.repository}/manifests/{entry['digest']}")
        assert "sha256:" + hashlib.sha256(body).hexdigest() == entry["digest"] and len(body) == entry["size"]
        subject = {
            "mediaType": OCI_MANIFEST,
            "digest": published.digest,
            "size": len(published.manifest_body),
        }
        assert json.loads(body)["subject"] == subject

    # The ModelPack manifest: its layers are the modelcar's own blobs; its config validates against the schema.
    pack_entry = next(
        m for m in index["manifests"] if m["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    )
    pack = json.loads(registry_get(registry, f"/v2/{published.repository}/manifests/{pack_entry['digest']}"))
    assert pack["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert [(x["digest"], x["size"]) for x in pack["layers"]] == sorted(
        ((x["digest"], x["size"]) for x in published.model_layers),
        key=lambda pair: next(
            Path(x["annotations"]["io.llm-platform.modelcar.file.path"]).parts
            for x in published.model_layers
            if x["digest"] == pair[0]
        ),
    )
    types = {x["annotations"]["org.cncf.model.filepath"]: x["mediaType"] for x in pack["layers"]}
    assert types["model-00001-of-00002.safetensors"] == "application/vnd.cncf.model.weight.v1.tar"
    assert types["config.json"] == "application/vnd.cncf.model.weight.config.v1.tar"
    schema_bytes = (FIXTURES / "config-schema.json").read_bytes()
    assert hashlib.sha256(schema_bytes).hexdigest() == MODELPACK_SCHEMA_SHA256
    assert pack["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    config = json.loads(
        registry_get(registry, f"/v2/{published.repository}/blobs/{pack['config']['digest']}")
    )
    jsonschema.Draft4Validator(json.loads(schema_bytes)).validate(config)
    assert config["descriptor"] == {
        "name": "signed-model",
        "family": "qwen2",
        "sourceURL": "https://huggingface.co/example-org/signed-model",
        "revision": "0123456789abcdef0123456789abcdef01234567",
    }
    assert config["config"] == {"format": "safetensors", "precision": "bfloat16", "paramSize": "1.54B"}
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict enough to catch a wrong config
        jsonschema.Draft4Validator(json.loads(schema_bytes)).validate(
            {**config, "modelfs": {"type": "layers"}}
        )

    # Signing again changes nothing (deterministic ECDSA): same manifests, no new referrers, no upload.
    log.mark()
    assert sign(capsys, published, keys)["attachments"] == result["attachments"]
    assert referrers_index(registry, published) == index
    assert log.committed_digests() == []


def test_verify_fails_for_unsigned_other_key_tampered_signature_and_payload(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    password_env: None,
) -> None:
    published = publish(tmp_path, registry, busybox_layout)
    keys, other = make_keys(tmp_path / "keys"), make_keys(tmp_path / "other", "other")

    code, lines = verify(capsys, published, keys.public)
    assert code == 1
    assert (
        lines[0]
        == f"FAILED signature: not signed: no {published.digest.replace(':', '-')}.sig in {registry.host}/{published.repository}"
    )
    assert all(line.startswith("FAILED ") for line in lines)

    sign(capsys, published, keys)
    code, lines = verify(capsys, published, keys.public)
    assert code == 0, lines

    code, lines = verify(capsys, published, other.public)
    assert code == 1
    assert lines[0] == f"FAILED signature: signature does not verify with {other.public}"
    assert lines[1].startswith("FAILED oms: bundle names another key")
    assert lines[2].startswith("FAILED provenance: bundle names another key")

    # Tampered signature: the `.sig` manifest re-pushed with another valid-looking signature of the payload.
    tag = published.digest.replace(":", "-") + ".sig"
    original = registry_get(registry, f"/v2/{published.repository}/manifests/{tag}")
    sig_manifest = json.loads(original)
    layer = sig_manifest["layers"][0]
    payload = registry_get(registry, f"/v2/{published.repository}/blobs/{layer['digest']}")
    forged = base64.b64encode(other.key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    layer["annotations"]["dev.cosignproject.cosign/signature"] = forged
    registry_put_manifest(registry, published.repository, tag, json.dumps(sig_manifest).encode())
    code, lines = verify(capsys, published, keys.public)
    assert code == 1 and lines[0] == f"FAILED signature: signature does not verify with {keys.public}"

    # Tampered payload: the signed payload names another digest; the original signature no longer matches it.
    sig_manifest = json.loads(original)
    document = json.loads(payload)
    document["critical"]["image"]["docker-manifest-digest"] = "sha256:" + "0" * 64
    tampered = json.dumps(document).encode()
    sig_manifest["layers"][0] |= {
        "digest": registry_put_blob(registry, published.repository, tampered),
        "size": len(tampered),
    }
    registry_put_manifest(registry, published.repository, tag, json.dumps(sig_manifest).encode())
    code, lines = verify(capsys, published, keys.public)
    assert code == 1 and lines[0] == f"FAILED signature: signature does not verify with {keys.public}"

    # A payload signed by the right key but for another image is refused too (the digest is checked).
    document["critical"]["image"]["docker-manifest-digest"] = "sha256:" + "1" * 64
    resigned = json.dumps(document).encode()
    sig_manifest["layers"][0] |= {
        "digest": registry_put_blob(registry, published.repository, resigned),
        "size": len(resigned),
        "annotations": {
            "dev.cosignproject.cosign/signature": base64.b64encode(
                keys.key.sign(resigned, ec.ECDSA(hashes.SHA256()))
            ).decode()
        },
    }
    registry_put_manifest(registry, published.repository, tag, json.dumps(sig_manifest).encode())
    code, lines = verify(capsys, published, keys.public)
    assert (
        code == 1
        and lines[0] == f"FAILED signature: payload signs 'sha256:{'1' * 64}', not {published.digest}"
    )

    # Restored: verifies again; a spec that is not the image's fails the spec and provenance checks.
    registry_put_manifest(registry, published.repository, tag, original)
    assert verify(capsys, published, keys.public)[0] == 0
    other_spec = tmp_path / "other-spec" / "signed-model.yaml"
    other_spec.parent.mkdir()
    other_spec.write_text(published.model.spec.read_text().replace('["*"]', '["*", "*.bin"]'))
    code, lines = verify(capsys, published, keys.public, "--spec", str(other_spec))
    assert code == 1
    assert lines[1].startswith("ok spec")
    assert lines[3].startswith("FAILED provenance: spec sha256") and "(the spec changed)" in lines[3]


def test_signature_has_the_format_cosign_and_containers_image_read(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    password_env: None,
) -> None:
    """Debian's skopeo/podman are built without sigstore verification and cosign is not packaged: the `.sig`
    image is checked against the format as cosign's SIGNATURE_SPEC and containers/image's sigstore_payload.go
    define it, by an independent reading (urllib + cryptography), and skopeo copies it as a sigstore signature."""
    published = publish(tmp_path, registry, busybox_layout)
    keys = make_keys(tmp_path / "keys")
    sign(capsys, published, keys)

    import urllib.request

    tag = published.digest.replace(":", "-") + ".sig"
    request = urllib.request.Request(
        f"{registry.url}/v2/{published.repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == OCI_MANIFEST  # containers/image requires exactly this
        sig_manifest = json.loads(response.read())
    [layer] = sig_manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = registry_get(registry, f"/v2/{published.repository}/blobs/{layer['digest']}")
    document = json.loads(payload)
    assert set(document) == {"critical", "optional"}
    assert document["critical"] == {
        "identity": {"docker-reference": f"{registry.host}/{published.repository}"},
        "image": {"docker-manifest-digest": published.digest},
        "type": "cosign container image signature",
    }
    assert isinstance(document["optional"]["creator"], str)
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"], validate=True)
    keys.key.public_key().verify(
        signature, payload, ec.ECDSA(hashes.SHA256())
    )  # DER ECDSA P-256 over the bytes

    # containers/image with use-sigstore-attachments finds the `.sig` tag and copies it as a sigstore signature.
    registries_d = tmp_path / "registries.d"
    registries_d.mkdir()
    (registries_d / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    copied = tmp_path / "copied"
    skopeo_copy(
        f"docker://{published.reference}",
        f"dir:{copied}",
        "--src-tls-verify=false",
        f"--registries.d={registries_d}",
    )
    stored = (copied / "signature-1").read_bytes()
    header, _, body = stored.partition(b"\n")
    assert header == b"\x00sigstore-json"
    copied_signature = json.loads(body)
    assert copied_signature["mimeType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert base64.b64decode(copied_signature["payload"]) == payload
    assert (
        copied_signature["annotations"]["dev.cosignproject.cosign/signature"]
        == layer["annotations"]["dev.cosignproject.cosign/signature"]
    )


@pytest.mark.parametrize("max_layers", [None, 4], ids=["a-layer-per-file", "files-sharing-layers"])
def test_oms_bundle_verifies_with_model_signing_against_the_files_umoci_unpacks(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    password_env: None,
    max_layers: int | None,
) -> None:
    """Also above the layer budget, where the smallest files share layers: every file is attested."""
    published = publish(tmp_path, registry, busybox_layout, f"oms-{max_layers or 'default'}", max_layers)
    shared = [x for x in published.manifest["layers"] if ANNOTATION_FILES in (x.get("annotations") or {})]
    if max_layers is not None:
        assert len(published.manifest["layers"]) == max_layers and shared
    else:
        assert not shared
    keys = make_keys(tmp_path / "keys")
    result = sign(capsys, published, keys)
    code, lines = verify(capsys, published, keys.public, "--spec", str(published.model.spec))
    assert code == 0, lines
    oms = next(a for a in result["attachments"] if a["kind"] == "oms")
    bundle_manifest = json.loads(
        registry_get(registry, f"/v2/{published.repository}/manifests/{oms['digest']}")
    )
    bundle = tmp_path / "model.sig"
    bundle.write_bytes(
        registry_get(registry, f"/v2/{published.repository}/blobs/{bundle_manifest['layers'][0]['digest']}")
    )

    layout = tmp_path / "pulled"
    skopeo_copy(f"docker://{published.reference}", f"oci:{layout}:modelcar", "--src-tls-verify=false")
    bundle_dir = tmp_path / "unpacked"
    run([require_tool("umoci"), "unpack", "--image", f"{layout}:modelcar", str(bundle_dir)])
    models = bundle_dir / "rootfs" / "models"
    assert sorted(p.relative_to(models).as_posix() for p in models.rglob("*") if p.is_file()) == sorted(
        published.model.files
    )

    model_signing = [sys.executable, "-m", "model_signing", "verify", "key", str(models)]
    args = [*model_signing, "--signature", str(bundle), "--public_key", str(keys.public)]
    verified = subprocess.run(args, capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Verification succeeded" in verified.stdout + verified.stderr

    other = make_keys(tmp_path / "other", "other")
    wrong_key = subprocess.run(
        [*model_signing, "--signature", str(bundle), "--public_key", str(other.public)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong_key.returncode != 0
    (models / "sub" / "vocab.txt").write_bytes(b"tampered")
    tampered = subprocess.run(args, capture_output=True, text=True, check=False)
    assert tampered.returncode != 0 and "sub/vocab.txt" in tampered.stdout + tampered.stderr


def test_no_key_material_or_password_in_output_logs_registry_or_files(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key comes from the environment (its PEM text) with its password: neither, nor the private number,
    may appear in stdout, stderr (-v logs included), any file under the test's tmp dir or the registry's blobs."""
    published = publish(tmp_path, registry, busybox_layout)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode()),
    )
    public = tmp_path / "signing.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    monkeypatch.setenv(SIGNING_KEY_ENV, pem.decode())
    monkeypatch.setenv(SIGNING_KEY_PASSWORD_ENV, PASSWORD)
    out_err = []
    for args in (
        ["-v", "modelcar", "sign", published.reference, "--spec", str(published.model.spec)],
        ["-v", "modelcar", "verify", published.reference, "--key", str(public), "--json"],
    ):
        code, out, err = cli(capsys, *args)
        assert code == 0, err
        out_err.append(out + err)
    # A wrong password fails in one line that names the variable, not its value.
    monkeypatch.setenv(SIGNING_KEY_PASSWORD_ENV, PASSWORD + "-wrong")
    code, out, err = cli(capsys, "modelcar", "sign", published.reference, "--spec", str(published.model.spec))
    assert (
        code == 2
        and err
        == f"llm-platform: error: ${SIGNING_KEY_ENV}: not a readable PEM private key or ${SIGNING_KEY_PASSWORD_ENV} is wrong\n"
    )
    out_err.append(out + err)

    secret_number = key.private_numbers().private_value.to_bytes(32, "big")
    unencrypted = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_body = b"".join(pem.splitlines()[1:-1])
    canaries = {
        "password": PASSWORD.encode(),
        "private number": secret_number,
        "private number (hex)": secret_number.hex().encode(),
        "PKCS#8 DER": unencrypted,
        "PKCS#8 DER (base64)": base64.b64encode(unencrypted)[:40],
        "encrypted PEM body": pem_body[:40],
    }
    for text in out_err:
        for name, canary in canaries.items():
            assert canary not in text.encode(), f"{name} in the command output"
    scanned = 0
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            scanned += 1
            for name, canary in canaries.items():
                assert canary not in data, f"{name} in {path}"
    assert scanned > 20  # the registry's blobs, manifests and log were among them
    assert os.environ[SIGNING_KEY_ENV]  # (the key only ever lived in the environment)


def test_user_errors_exit_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        SIGNING_KEY_ENV,
        SIGNING_KEY_PASSWORD_ENV,
        "SIGSTORE_ID_TOKEN",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
    ):
        monkeypatch.delenv(name, raising=False)
    spec = tmp_path / "m.yaml"
    keys = make_keys(tmp_path / "keys")
    ref = "127.0.0.1:1/modelcars/m@sha256:" + "a" * 64
    cases = {
        ("--keyless",): "--keyless: no OIDC identity token: set $SIGSTORE_ID_TOKEN",
        (): f"no signing key: give --key FILE or set ${SIGNING_KEY_ENV} (the PEM text)",
        ("--key", str(tmp_path / "missing.key")): f"{tmp_path / 'missing.key'}: cannot read the signing key",
        (
            "--key",
            str(keys.private),
        ): f"{keys.private}: the key is encrypted: set ${SIGNING_KEY_PASSWORD_ENV}",
        ("--key", str(keys.public)): f"{keys.public}: not a readable PEM private key",
    }
    for extra, message in cases.items():
        code, out, err = cli(capsys, "modelcar", "sign", ref, "--spec", str(spec), *extra)
        assert code == 2 and out == "", (extra, err)
        assert err.startswith(f"llm-platform: error: {message}") and err.count("\n") == 1, (extra, err)
    cosign_key = tmp_path / "cosign.key"
    cosign_key.write_text(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    code, _, err = cli(capsys, "modelcar", "sign", ref, "--spec", str(spec), "--key", str(cosign_key))
    assert code == 2 and "a cosign-format private key (scrypt + secretbox) is not supported" in err
    code, _, err = cli(capsys, "modelcar", "verify", ref, "--key", str(keys.private))
    assert code == 2 and err == f"llm-platform: error: {keys.private}: not a PEM public key\n"

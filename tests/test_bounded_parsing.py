"""Bounded parsing (`llm_platform.documents`) and the readers that use it: hostile or broken YAML and JSON
(alias bombs, 10k-deep nesting, huge or dense files, control characters, FIFOs, symlink loops) end within
seconds as one clear error or finding, never as a hang, a RecursionError or memory without bound."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_platform.documents import (
    CONFIG_LIMITS,
    MANIFEST_LIMITS,
    OCI_LIMITS,
    DocumentError,
    iter_yaml,
    load_json,
    load_yaml,
    read_bytes,
)
from llm_platform.errors import InputError
from llm_platform.lint import load_config, run_lint
from llm_platform.lint.crds_lock import load_lock
from llm_platform.lint.schemas import CrdStore
from llm_platform.lint.sources import load_file
from llm_platform.modelcar.base_image import load_base
from llm_platform.modelcar.lock import parse_lock
from llm_platform.modelcar.spec import load_spec, load_spec_text
from llm_platform.registry.auth import resolve_credentials
from llm_platform.tofu.protection import load_policy

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools

SECONDS = 10  # every hostile input ends well within this (most in milliseconds)


def billion_laughs(levels: int = 9, prefix: str = "") -> str:
    """The classic alias bomb: `levels` lines of ten aliases each, 10**levels strings once expanded."""
    lines = [f'{prefix}a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    names = "abcdefghijklmnopqrstuvwxyz"
    for i in range(1, levels):
        lines.append(f"{prefix}{names[i]}: &{names[i]} [{', '.join(['*' + names[i - 1]] * 10)}]")
    return "\n".join(lines) + "\n"


DEEP_FLOW = "[" * 10_000 + "]" * 10_000
DEEP_BLOCK = "".join(" " * i + "a:\n" for i in range(300)) + " " * 300 + "b\n"
DEEP_JSON = "[" * 10_000 + "]" * 10_000


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    try:
        result: Any = fn()
    except Exception as exc:  # noqa: BLE001 - the caller asserts on what was raised
        result = exc
    return result, time.perf_counter() - start


def refused(fn: Callable[[], Any], kind: str | None = None) -> DocumentError:
    result, seconds = timed(fn)
    assert isinstance(result, DocumentError), result
    assert seconds < SECONDS
    assert "\n" not in str(result)
    if kind is not None:
        assert result.kind == kind, str(result)
    return result


# -- the bounded loader -----------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_from_its_node_counts_without_being_expanded() -> None:
    err = refused(lambda: list(iter_yaml(billion_laughs(), source="lol.yaml")), "limit")
    assert str(err).startswith("lol.yaml:") and "aliases counted as what they expand to" in str(err)
    # Below the cap, aliases are ordinary YAML: expanded as usual.
    (doc,) = iter_yaml(billion_laughs(levels=3), source="ok.yaml")
    assert len(doc.data["c"]) == 10 and doc.data["c"][0][0] == ["lol"] * 10


def test_alias_count_and_recursive_aliases_are_refused() -> None:
    many = "a: &a x\nb: [" + ", ".join(["*a"] * 101) + "]\n"
    err = refused(lambda: load_yaml(many, source="c.yaml", limits=CONFIG_LIMITS), "limit")
    assert "more than 100 aliases" in str(err)
    err = refused(lambda: load_yaml("a: &a [1, *a]\n", source="r.yaml"), "limit")
    assert str(err) == "r.yaml:1: recursive alias: an anchor is used inside itself"


@pytest.mark.parametrize(
    "text", [DEEP_FLOW, DEEP_BLOCK, "[" * 150 + "]" * 150], ids=["10k-flow", "block", "150"]
)
def test_deep_nesting_is_refused_without_recursion(text: str) -> None:
    err = refused(lambda: load_yaml(text, source="deep.yaml", limits=CONFIG_LIMITS), "limit")
    assert "nested deeper than 100 levels" in str(err) and str(err).startswith("deep.yaml:")
    # The manifest limit is higher; 10k levels are refused there too (libyaml stops at 1000 itself).
    refused(lambda: list(iter_yaml(DEEP_FLOW, source="deep.yaml", limits=MANIFEST_LIMITS)), "limit")


def test_deep_json_is_refused_without_recursion() -> None:
    err = refused(lambda: load_json(DEEP_JSON, source="x.json", limits=OCI_LIMITS), "limit")
    assert str(err) == "x.json:1: nested deeper than 64 levels: not parsed"
    nested = '{"a":\n' * 70 + "1" + "}" * 70
    err = refused(lambda: load_json(nested, source="y.json", limits=OCI_LIMITS), "limit")
    assert str(err).startswith("y.json:65: nested deeper")


def test_a_dense_file_under_the_byte_cap_is_refused_before_it_is_composed() -> None:
    dense = "[" + "0," * 600_000 + "0]"  # 1.2 MB that would compose to 600k nodes (~170 MB)
    err = refused(lambda: list(iter_yaml(dense, source="dense.yaml")), "limit")
    assert "more than 500,000 YAML nodes" in str(err)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: costs no disk
    err = refused(lambda: read_bytes(huge, MANIFEST_LIMITS), "limit")
    assert "67,108,864 bytes" in str(err) and "limit of 16,777,216" in str(err)
    err = refused(lambda: load_spec(_spec_file(tmp_path, "x" * 2_000_000)), "limit")
    assert "over the limit of 1,048,576 bytes" in str(err)


def test_a_fifo_is_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    outcome: list[Any] = []
    reader = threading.Thread(target=lambda: outcome.append(timed(lambda: read_bytes(fifo, CONFIG_LIMITS))))
    reader.start()
    reader.join(SECONDS)
    assert outcome, "reading a FIFO blocked"
    err, _ = outcome[0]
    assert isinstance(err, DocumentError) and err.kind == "not-regular"
    assert str(err) == f"{fifo}: a FIFO, not a regular file: not read"
    assert load_file(fifo, "x.yaml").findings[0].rule_id == "yaml-not-regular-file"


def test_a_symlink_loop_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    err = refused(lambda: read_bytes(tmp_path / "a.yaml", CONFIG_LIMITS), "symlink-loop")
    assert str(err).startswith(f"{tmp_path / 'a.yaml'}: symlink loop")


def test_a_bare_equals_sign_is_the_string_equals() -> None:
    """Valid upstream YAML (the Alertmanager CRD's matchType enum) that PyYAML alone cannot construct."""
    text = "enum:\n- '!='\n- =\n- =~\n- '!~'\n"
    doc = load_yaml(text, source="crd.yaml")
    assert doc is not None and doc.data == {"enum": ["!=", "=", "=~", "!~"]}
    assert load_file_text(text)[0] == {"enum": ["!=", "=", "=~", "!~"]}


def test_a_crd_with_a_bare_equals_enum_loads(tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "alertmanagerconfigs.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: alertmanagerconfigs.monitoring.coreos.com\nspec:\n  group: monitoring.coreos.com\n"
        "  names:\n    kind: AlertmanagerConfig\n    plural: alertmanagerconfigs\n  scope: Namespaced\n"
        "  versions:\n  - name: v1alpha1\n    served: true\n    storage: true\n    schema:\n"
        "      openAPIV3Schema:\n        type: object\n        properties:\n          matchType:\n"
        "            type: string\n            enum:\n            - '!='\n            - =\n"
        "            - =~\n            - '!~'\n"
    )
    crd = CrdStore([crds], cache_dir=None).lookup("monitoring.coreos.com", "AlertmanagerConfig")
    assert crd is not None
    validator = crd.served["v1alpha1"]
    ok = {"apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "AlertmanagerConfig", "matchType": "="}
    assert validator.validate(ok, {}).errors == []
    assert validator.validate({**ok, "matchType": "=="}, {}).errors != []


def load_file_text(text: str) -> list[Any]:
    return [d.data for d in load_file(Path("t.yaml"), "t.yaml", text).docs]


# -- specs ------------------------------------------------------------------------------------------------

GOOD_SPEC = """\
huggingface:
  repo: example/tiny
  revision: 0123456789abcdef0123456789abcdef01234567
image:
  repository: registry.example.com/modelcars/tiny
serving:
  served_model_name: tiny
"""


def _spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD_SPEC.replace("example/tiny", "example/ti\x01ny"),
            "tiny.yaml:2: invalid YAML: control character 0x01",
        ),
        (GOOD_SPEC.replace("tiny\n", "tiny\x7f\n", 1), "tiny.yaml:2: invalid YAML: control character 0x7f"),
        ("serving: " + DEEP_FLOW, "tiny.yaml:1: nested deeper than 100 levels"),
        (billion_laughs(), "tiny.yaml:5: more than 100,000 YAML nodes"),
        (GOOD_SPEC + "image: {}\n", "tiny.yaml:8: invalid YAML: duplicate key 'image'"),
        (GOOD_SPEC + "---\nb: 1\n", "tiny.yaml:9: invalid YAML: expected one document"),
        ("- a\n- b\n", "tiny.yaml:1: a spec must be a mapping"),
        ("", "tiny.yaml:1: a spec must be a mapping"),
    ],
    ids=["control", "delete", "deep", "bomb", "duplicate", "two-documents", "list", "empty"],
)
def test_a_broken_spec_is_one_line_naming_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    result, seconds = timed(lambda: load_spec(_spec_file(tmp_path, text)))
    assert isinstance(result, InputError) and seconds < SECONDS, result
    assert str(result).startswith(str(tmp_path / expected.split(":")[0])), str(result)
    assert expected.split(":", 1)[1] in str(result) and "\n" not in str(result)
    assert result.exit_code == 2
    with pytest.raises(InputError) as caught:  # the same from text (the Dagger module's path)
        load_spec_text(text, source_name="modelcars/tiny.yaml")
    assert str(caught.value) == str(result).replace(str(tmp_path), "modelcars")


def test_a_good_spec_still_loads(tmp_path: Path) -> None:
    spec = load_spec(_spec_file(tmp_path, GOOD_SPEC))
    assert spec.name == "tiny" and spec.serving.served_model_name == "tiny"


# -- configs, locks, policies, auth files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ignore: [\n", "lint.yaml:2: not valid YAML"),
        ("ignore:\n  - path: a\n    rulez: [x]\n", "lint.yaml:3: field ignore.0.rulez"),
        ("- a\n- b\n", "lint.yaml:1: field (root)"),
        ("ignore: " + DEEP_FLOW, "lint.yaml:1: nested deeper than 100 levels"),
        (billion_laughs(), "lint.yaml:5: more than 100,000 YAML nodes"),
        ("kubernetes_version: '1.33'\x00\n", "lint.yaml:1: not valid YAML: control character 0x00"),
        ("ignore: []\nignore: []\n", "lint.yaml:2: duplicate key 'ignore'"),
    ],
    ids=["unclosed", "unknown-field", "not-a-mapping", "deep", "bomb", "nul", "duplicate"],
)
def test_a_malformed_lint_config_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "lint.yaml"
    path.write_text(text)
    result, seconds = timed(lambda: load_config(path))
    assert isinstance(result, InputError) and seconds < SECONDS, result
    assert str(result).startswith(f"--config {tmp_path}/") and expected in str(result), str(result)
    assert "\n" not in str(result)


def test_a_lint_config_that_is_a_fifo_or_a_directory_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "dir.yaml").mkdir()
    for name, what in (("fifo.yaml", "a FIFO"), ("dir.yaml", "a directory")):
        result, seconds = timed(lambda name=name: load_config(tmp_path / name))
        assert isinstance(result, InputError) and seconds < SECONDS
        assert str(result) == f"--config {tmp_path / name}: {what}, not a regular file: not read"


def test_locks_policies_and_auth_files_are_bounded(tmp_path: Path) -> None:
    err = refused(lambda: parse_lock(DEEP_JSON.encode(), source="m.lock.json"))
    assert str(err) == "m.lock.json:1: nested deeper than 100 levels: not parsed"
    with pytest.raises(InputError, match=r"^m\.lock\.json:2: not a valid JSON lock file: "):
        parse_lock(b'{\n"a" 1}', source="m.lock.json")

    lock = tmp_path / "crds.lock.yaml"
    lock.write_text(billion_laughs())
    err = refused(lambda: load_lock(lock), "limit")
    assert str(err).startswith(f"{lock}:5: more than 100,000 YAML nodes")
    lock.write_text("crds:\n  - project: x\n    version: v1\n")
    with pytest.raises(InputError, match=rf"^{lock}:2: field crds\.0\.url: Field required"):
        load_lock(lock)

    (tmp_path / "protected-resources.yaml").write_text("types: " + DEEP_FLOW)
    err = refused(lambda: load_policy(tmp_path), "limit")
    assert str(err).startswith(f"{tmp_path / 'protected-resources.yaml'}:1: nested deeper")

    auth = tmp_path / "auth.json"
    auth.write_text(DEEP_JSON)
    err = refused(lambda: resolve_credentials("reg.example", environ={"REGISTRY_AUTH_FILE": str(auth)}))
    assert str(err) == f"{auth}:1: nested deeper than 100 levels: not parsed"


# -- the lint tree ----------------------------------------------------------------------------------------


def _tree(tmp_path: Path) -> Path:
    gitops = tmp_path / "repo" / "gitops"
    gitops.mkdir(parents=True)
    (gitops / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n  namespace: a\n"
    )
    return tmp_path / "repo"


def _lint(repo: Path) -> tuple[list[tuple[str, str, int]], float]:
    report, seconds = timed(lambda: run_lint([repo / "gitops"], cwd=repo, cache_dir=None))
    assert not isinstance(report, BaseException), report
    return [(f.rule_id, f.path, f.line) for f in report.findings], seconds


def test_lint_reports_hostile_files_and_goes_on(tmp_path: Path) -> None:
    repo = _tree(tmp_path)
    gitops = repo / "gitops"
    os.mkfifo(gitops / "x.yaml")
    (gitops / "loop.yaml").symlink_to("loop.yaml")
    (gitops / "out.yaml").symlink_to("/etc/hostname")
    (gitops / "lol.yaml").write_text(billion_laughs())
    (gitops / "deep.yaml").write_text(DEEP_FLOW)
    (gitops / "ctrl.yaml").write_text("a: b\x01\n")
    (gitops / "sub").mkdir()
    (gitops / "sub" / "loopdir").symlink_to("loopdir")  # any symlink loop, whatever its name
    findings, seconds = _lint(repo)
    assert seconds < SECONDS
    assert sorted(findings) == [
        ("yaml-limits", "gitops/deep.yaml", 1),
        ("yaml-limits", "gitops/lol.yaml", 6),
        ("yaml-not-regular-file", "gitops/x.yaml", 1),
        ("yaml-symlink-escape", "gitops/out.yaml", 1),
        ("yaml-symlink-loop", "gitops/loop.yaml", 1),
        ("yaml-symlink-loop", "gitops/sub/loopdir", 1),
        ("yaml-syntax", "gitops/ctrl.yaml", 1),
    ]


def test_a_kustomization_naming_a_fifo_is_not_rendered(tmp_path: Path) -> None:
    repo = _tree(tmp_path)
    app = repo / "gitops" / "app"
    app.mkdir()
    (app / "kustomization.yaml").write_text("resources:\n  - pipe.yaml\n")
    os.mkfifo(app / "pipe.yaml")
    findings, seconds = _lint(repo)
    assert seconds < SECONDS  # kustomize never started: it would have blocked on the FIFO
    assert sorted(findings) == [
        ("render-kustomize", "gitops/app/kustomization.yaml", 1),
        ("yaml-not-regular-file", "gitops/app/pipe.yaml", 1),
    ]


def test_a_kustomization_cycle_is_an_error_naming_both_directories(tmp_path: Path) -> None:
    repo = _tree(tmp_path)
    for name, other in (("a", "b"), ("b", "a")):
        (repo / "gitops" / name).mkdir()
        (repo / "gitops" / name / "kustomization.yaml").write_text(f"resources:\n  - ../{other}\n")
    (repo / "gitops" / "c").mkdir()
    (repo / "gitops" / "c" / "kustomization.yaml").write_text("resources:\n  - .\n")
    report = run_lint([repo / "gitops"], cwd=repo, cache_dir=None)
    assert [(f.rule_id, f.path, f.line, f.message) for f in report.findings] == [
        (
            "render-kustomize-cycle",
            "gitops/a/kustomization.yaml",
            2,
            "kustomization cycle: gitops/a includes gitops/b, which includes gitops/a again",
        ),
        (
            "render-kustomize-cycle",
            "gitops/c/kustomization.yaml",
            2,
            "kustomization cycle: gitops/c includes itself",
        ),
    ]
    assert report.exit_code == 1


# -- OCI layouts ------------------------------------------------------------------------------------------


def _blob(layout: Path, document: Any) -> tuple[str, int]:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def _layout(tmp_path: Path, *, index: Any = None, manifest: Any = None, config: Any = None) -> Path:
    layout = tmp_path / "base"
    layer, layer_size = _blob(layout, b"layer")
    if config is None:
        config = {"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [layer]}}
    config_digest, config_size = _blob(layout, config)
    if manifest is None:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}
            ],
        }
    manifest_digest, manifest_size = _blob(layout, manifest)
    if index is None:
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                }
            ],
        }
    (layout / "index.json").write_text(index if isinstance(index, str) else json.dumps(index))
    return layout


def _manifest_without(part: str, layer_part: str | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "0" * 64},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "1" * 64, "size": 1}
        ],
    }
    if layer_part is not None:
        del manifest["layers"][0][layer_part]
    else:
        del manifest[part]
    return manifest


def test_a_good_hand_made_layout_loads(tmp_path: Path) -> None:
    base = load_base(f"oci:{_layout(tmp_path)}")
    assert len(base.layers) == 1 and base.config["os"] == "linux"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({"index": {"schemaVersion": 2}}, "index.json: manifests: missing"),
        (
            {"index": {"manifests": [{"digest": "sha256:" + "0" * 64}]}},
            "index.json: manifests[0].mediaType: missing",
        ),
        ({"index": {"manifests": [{"mediaType": "x"}]}}, "index.json: manifests[0].digest: missing"),
        ({"index": {"manifests": ["x"]}}, "index.json: manifests[0]: not a descriptor object"),
        ({"index": "[]"}, "index.json: not a JSON object"),
        ({"index": DEEP_JSON}, "index.json:1: nested deeper than 64 levels"),
        ({"index": "{\n\x01}"}, "index.json:2: not valid JSON"),
        ({"manifest": _manifest_without("config")}, ": config: not a descriptor object"),
        ({"manifest": _manifest_without("layers")}, ": layers: missing (an OCI image manifest needs it)"),
        ({"manifest": _manifest_without("", "digest")}, ": layers[0].digest: missing"),
        ({"manifest": _manifest_without("", "mediaType")}, ": layers[0].mediaType: missing"),
        ({"manifest": _manifest_without("", "size")}, ": layers[0].size: missing or not a byte count"),
        ({"config": {"os": "linux", "architecture": "amd64"}}, ": rootfs.diff_ids: missing"),
        ({"config": [1]}, ": not a JSON object"),
    ],
    ids=[
        "no-manifests",
        "entry-no-mediatype",
        "entry-no-digest",
        "entry-not-object",
        "index-not-object",
        "index-deep",
        "index-control",
        "no-config",
        "no-layers",
        "layer-no-digest",
        "layer-no-mediatype",
        "layer-no-size",
        "config-no-rootfs",
        "config-not-object",
    ],
)
def test_a_layout_missing_parts_is_one_input_error_naming_file_and_field(
    tmp_path: Path, parts: dict[str, Any], expected: str
) -> None:
    layout = _layout(tmp_path, **parts)
    result, seconds = timed(lambda: load_base(f"oci:{layout}"))
    assert isinstance(result, InputError) and seconds < SECONDS, repr(result)
    assert expected in str(result) and "\n" not in str(result), str(result)
    assert str(layout) in str(result) and ("index.json" in str(result) or "blobs/sha256/" in str(result))


def test_a_stuck_kustomize_build_ends_at_its_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that blocks inside kustomize (a FIFO named by a field lint does not follow) ends the build
    at the render timeout, as a render-kustomize error, instead of holding the run for ever."""
    from llm_platform.lint.render import Renderer

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kustomize").write_text("#!/bin/sh\nexec sleep 60\n")
    (bin_dir / "kustomize").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    renderer = Renderer([], timeout=1)
    try:
        renderer.start([tmp_path])
        (result,), seconds = timed(lambda: list(renderer.results().values()))
    finally:
        renderer.close()
    assert result.error == "did not finish within 1 s" and seconds < SECONDS

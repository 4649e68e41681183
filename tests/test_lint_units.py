"""The linter's building blocks on small inputs: YAML positions, duplicate keys, structural CRD
validation (defaults before CEL, preserve-unknown-fields, int-or-string) and all-errors reporting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llm_platform.errors import InputError
from llm_platform.lint.schemas import CoreSchemas, CrdStore, resolve_kubernetes_version
from llm_platform.lint.sources import load_file
from llm_platform.lint.structural import StructuralValidator

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools


def test_multi_document_positions_and_every_duplicate_key(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(
        "---\napiVersion: v1\nkind: A\nmetadata:\n  name: a\n  name: b\n---\n\n"
        "apiVersion: v1\nkind: B\nspec:\n  x: 1\n  y: 2\n  x: 3\n"
    )
    sf = load_file(f, "m.yaml")
    assert [d.data["kind"] for d in sf.docs] == ["A", "B"]
    assert sf.docs[1].locate(("kind",)) == (10, 1)
    assert sf.docs[1].locate(("spec", "y")) == (13, 3)
    assert sf.docs[1].locate(("spec", "nope", "deeper")) == (11, 1)  # deepest existing part
    dups = [(x.rule_id, x.line) for x in sf.findings]
    assert dups == [("yaml-duplicate-key", 6), ("yaml-duplicate-key", 14)]
    assert sf.docs[1].data["spec"]["x"] == 3  # YAML semantics kept: last wins


def test_syntax_error_line_and_tab(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("a: 1\nb:\n  - x\n  y: [\n")
    assert [(x.rule_id, x.line, x.col) for x in load_file(f, "s.yaml").findings] == [("yaml-syntax", 4, 3)]
    t = tmp_path / "t.yaml"
    t.write_text("a:\n\tb: 1\n")
    assert [(x.rule_id, x.line) for x in load_file(t, "t.yaml").findings] == [("yaml-tab", 2)]


POOL_CRD = "gateway-api-inference-extension/v1.5.0/inference.networking.k8s.io_inferencepools.yaml"


def _pool_validator(crds_dir: Path) -> StructuralValidator:
    store = CrdStore([crds_dir], cache_dir=None)
    crd = store.lookup("inference.networking.k8s.io", "InferencePool")
    assert crd is not None and crd.source.endswith(POOL_CRD)
    return crd.served["v1"]


def _pool(**spec: object) -> dict[str, object]:
    base: dict[str, object] = {
        "selector": {"matchLabels": {"app": "x"}},
        "targetPorts": [{"number": 8000}],
        "endpointPickerRef": {"name": "epp", "port": {"number": 9002}},
    }
    base.update(spec)
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "p"},
        "spec": base,
    }


def test_inferencepool_cel_rules_with_defaults(crds_dir: Path) -> None:
    v = _pool_validator(crds_dir)
    ok = v.validate(_pool())
    assert ok.errors == [] and ok.cel_evaluated >= 2
    # kind is absent: its CRD default ("Service") must be applied before the CEL rule runs.
    no_port = v.validate(_pool(endpointPickerRef={"name": "epp"}))
    assert [(e.rule_id, e.path) for e in no_port.errors] == [("schema-cel", ("spec", "endpointPickerRef"))]
    assert "port is required" in no_port.errors[0].message
    dup = v.validate(_pool(targetPorts=[{"number": 8000}, {"number": 8000}]))
    assert [e.rule_id for e in dup.errors] == ["schema-cel"]
    # All errors, not only the first: unknown field + enum + CEL in one object.
    many = v.validate(_pool(appProtocol="grpc", typo=1, endpointPickerRef={"name": "epp"}))
    assert sorted(e.rule_id for e in many.errors) == ["schema-cel", "schema-invalid", "schema-unknown-field"]


def test_preserve_unknown_fields_and_int_or_string() -> None:
    schema = yaml.safe_load("""
type: object
properties:
  spec:
    type: object
    properties:
      free: {type: object, x-kubernetes-preserve-unknown-fields: true}
      port: {x-kubernetes-int-or-string: true}
      strict: {type: object, properties: {a: {type: string}}}
""")
    v = StructuralValidator(schema)
    ok = v.validate(
        {
            "apiVersion": "x/v1",
            "kind": "K",
            "metadata": {},
            "spec": {"free": {"any": {"thing": 1}}, "port": "http"},
        }
    )
    assert ok.errors == []
    bad = v.validate(
        {"apiVersion": "x/v1", "kind": "K", "metadata": {}, "spec": {"port": 1.5, "strict": {"b": 1}}}
    )
    assert sorted((e.rule_id, e.path) for e in bad.errors) == [
        ("schema-invalid", ("spec", "port")),
        ("schema-unknown-field", ("spec", "strict", "b")),
    ]


def test_core_schema_reports_all_errors() -> None:
    core = CoreSchemas(resolve_kubernetes_version("1.33"))
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replica": 1,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "i", "resourcez": {}, "ports": [{"containerPort": "x"}]}
                    ]
                },
            },
        },
    }
    errors = core.validate(deploy)
    assert errors is not None
    got = sorted((e.rule_id, e.path) for e in errors)
    assert ("schema-unknown-field", ("spec", "replica")) in got
    assert ("schema-unknown-field", ("spec", "template", "spec", "containers", 0, "resourcez")) in got
    assert (
        "schema-invalid",
        ("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"),
    ) in got
    assert core.validate({"apiVersion": "apps/v1beta1", "kind": "Deployment"}) is None


def test_kubernetes_version_is_checked() -> None:
    assert resolve_kubernetes_version("v1.33.4") == "1.33"
    with pytest.raises(InputError, match="not supported"):
        resolve_kubernetes_version("1.99")


def _widget_crd(size_type: str) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": size_type}}}
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.mark.parametrize("parse_lock_file_first", [False, True])
def test_a_crd_the_tree_installs_takes_precedence_over_the_crd_lock(
    tmp_path: Path, parse_lock_file_first: bool
) -> None:
    """What a chart of the tree installs is what the cluster serves: its CRD validates the tree's
    objects, not an other version of the same kind from --crds, whichever was read first."""
    lock_dir = tmp_path / "crds"
    lock_dir.mkdir()
    (lock_dir / "widgets.yaml").write_text(yaml.safe_dump(_widget_crd("integer")))
    store = CrdStore([lock_dir], None)
    if parse_lock_file_first:
        lock_only = store.lookup("example.com", "Widget")
        assert lock_only is not None and lock_only.source.endswith("widgets.yaml")
    store.add(_widget_crd("string"), "rendered from chart widgets 1.0.0")
    store.add(_widget_crd("boolean"), "a second copy in the tree")
    entry = store.lookup("example.com", "Widget")
    assert entry is not None and entry.source == "rendered from chart widgets 1.0.0"
    assert entry.served["v1"].validate({"spec": {"size": "big"}}).errors == []
    assert entry.served["v1"].validate({"spec": {"size": 3}}).errors != []

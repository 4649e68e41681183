"""Modelcar specs: the shipped ones load, the schema is published and current, bad specs are refused
with a message naming file, line and field."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from llm_platform.errors import InputError
from llm_platform.modelcar.spec import (
    DEFAULT_BASE,
    check_glob,
    check_revision,
    load_spec,
    load_spec_text,
    spec_json_schema,
    spec_sha256,
)

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools

FIXTURES = Path(__file__).parent / "fixtures" / "modelcar"
SHIPPED = {
    "qwen2.5-coder-1.5b-instruct": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
    "qwen2.5-coder-7b-instruct": "Qwen/Qwen2.5-Coder-7B-Instruct",
    "qwen2.5-coder-14b-instruct": "Qwen/Qwen2.5-Coder-14B-Instruct",
    "minilm-demo": "sentence-transformers/all-MiniLM-L6-v2",
}


def test_shipped_specs_load_and_follow_the_conventions(repo_root: Path) -> None:
    found = {p.stem: load_spec(p) for p in sorted((repo_root / "modelcars").glob("*.yaml"))}
    assert set(SHIPPED) <= set(found)
    for name, hf_repo in SHIPPED.items():
        spec = found[name]
        assert spec.name == name
        assert spec.huggingface.repo == hf_repo
        assert spec.image.repository == f"us-central1-docker.pkg.dev/llm-platform-example/modelcars/{name}"
        assert spec.image.base == DEFAULT_BASE
    # The demo is pinned to the hub commit its packaged files come from.
    assert found["minilm-demo"].huggingface.revision == "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"


def test_published_schema_is_current_and_validates_shipped_specs(repo_root: Path) -> None:
    published = json.loads((repo_root / "modelcars" / "modelcar.schema.json").read_text())
    assert published == spec_json_schema(), (
        "regenerate: llm-platform modelcar schema > modelcars/modelcar.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(published)
    validator = jsonschema.Draft202012Validator(published)
    for path in (repo_root / "modelcars").glob("*.yaml"):
        validator.validate(YAML(typ="safe").load(path.read_text()))
    bad = YAML(typ="safe").load((FIXTURES / "unknown-field.yaml").read_text())
    assert not validator.is_valid(bad)


def test_schema_command_prints_the_published_schema(repo_root: Path) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "llm-platform"), "modelcar", "schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout) == json.loads(
        (repo_root / "modelcars" / "modelcar.schema.json").read_text()
    )


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "unknown-field.yaml",
            "unknown-field.yaml:5: huggingface.ignore_pattern: unknown field (did you mean 'ignore_patterns'?)",
        ),
        (
            "bad-glob.yaml",
            "bad-glob.yaml:6: huggingface.allow_patterns.1: pattern 'model-[0-9.safetensors' has an unclosed '['",
        ),
        (
            "bad-revision.yaml",
            "bad-revision.yaml:4: huggingface.revision: revision 'release..v1 final' is neither a 40-hex commit sha nor a valid branch/tag name",
        ),
        (
            "bad-repository.yaml",
            "bad-repository.yaml:5: image.repository: 'registry.example.com/ModelCars/Bad_Repo!' is not a valid OCI repository",
        ),
        (
            "unpinned-base.yaml",
            "unpinned-base.yaml:6: image.base: 'docker.io/library/busybox:1.37.0' is not pinned by digest",
        ),
        ("missing-serving.yaml", "missing-serving.yaml:1: serving: field required"),
        ("invalid-yaml.yaml", "invalid-yaml.yaml:5: invalid YAML"),
        ("Bad_Name.yaml", "spec name 'Bad_Name' (the file stem) must match"),
    ],
)
def test_bad_spec_is_refused_naming_file_line_and_field(fixture: str, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        load_spec(FIXTURES / fixture)
    assert expected in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.yaml")))
def test_load_spec_text_gives_load_spec_s_result_under_the_name_it_is_given(fixture: str) -> None:
    path = FIXTURES / fixture
    try:
        from_file = load_spec(path)
    except InputError as exc:
        with pytest.raises(InputError) as caught:
            load_spec_text(path.read_text(), source_name=f"modelcars/{fixture}")
        assert str(caught.value) == str(exc).replace(str(path), f"modelcars/{fixture}")
        assert str(caught.value).startswith(f"modelcars/{fixture}")
        assert caught.value.exit_code == 2
    else:
        assert load_spec_text(path.read_text(), source_name=f"modelcars/{fixture}") == from_file


def test_load_spec_text_names_the_spec_by_its_stem_and_errors_by_source_name(repo_root: Path) -> None:
    text = (repo_root / "modelcars" / "minilm-demo.yaml").read_text()
    spec = load_spec_text(text, source_name="modelcars/minilm-demo.yaml")
    assert spec == load_spec(repo_root / "modelcars" / "minilm-demo.yaml") and spec.name == "minilm-demo"
    with pytest.raises(InputError) as caught:
        load_spec_text(
            text.replace("revision: ", "revision: bad..ref  # "), source_name="modelcars/minilm-demo.yaml"
        )
    assert re.match(r"^modelcars/minilm-demo\.yaml:\d+: huggingface\.revision: ", str(caught.value))
    with pytest.raises(InputError, match=r"^modelcars/Bad_Name\.yaml: spec name 'Bad_Name'"):
        load_spec_text(text, source_name="modelcars/Bad_Name.yaml")


def test_pins_commit_tells_a_commit_from_a_branch_or_tag(repo_root: Path) -> None:
    text = (repo_root / "modelcars" / "minilm-demo.yaml").read_text()
    spec = load_spec_text(text, source_name="minilm-demo.yaml")
    assert spec.huggingface.pins_commit
    for revision in ("main", "v1.0", "1110a243"):
        moved = text.replace(spec.huggingface.revision, revision)
        assert not load_spec_text(moved, source_name="minilm-demo.yaml").huggingface.pins_commit


def test_every_problem_is_reported_with_its_own_line(tmp_path: Path) -> None:
    spec = tmp_path / "many.yaml"
    spec.write_text(
        "huggingface:\n"
        "  repo: not-a-repo-id\n"
        "  revision: ABCDEF0123456789ABCDEF0123456789ABCDEF01\n"
        "  allow_patterns: ['/abs/*.json', 'a/../b']\n"
        "image:\n"
        "  repository: example.com/x:tagged\n"
        "serving:\n"
        "  served_model_name: ok\n"
        "  port: 8000\n"
    )
    with pytest.raises(InputError) as caught:
        load_spec(spec)
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"{spec}:2: huggingface.repo:") for line in lines)
    assert any(line.startswith(f"{spec}:3: huggingface.revision:") and "lowercase" in line for line in lines)
    assert any(
        line.startswith(f"{spec}:4: huggingface.allow_patterns.0:") and "leading '/'" in line
        for line in lines
    )
    assert any(
        line.startswith(f"{spec}:4: huggingface.allow_patterns.1:") and "'..'" in line for line in lines
    )
    assert any(line.startswith(f"{spec}:6: image.repository:") and "without a tag" in line for line in lines)
    assert any(line.startswith(f"{spec}:9: serving.port: unknown field") for line in lines)


def test_name_inside_the_file_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "demo.yaml"
    spec.write_text("name: other\n" + (FIXTURES / "unknown-field.yaml").read_text())
    with pytest.raises(InputError, match=r"demo.yaml:1: name: unknown field \(the name is the file stem\)"):
        load_spec(spec)


def test_missing_spec_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="spec file not found"):
        load_spec(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "revision",
    ["main", "v1.0", "refs/pr/12", "release/2025-01", "a" * 40, "0123456789abcdef" * 2 + "01234567"],
)
def test_valid_revisions(revision: str) -> None:
    assert check_revision(revision) == revision


@pytest.mark.parametrize(
    "revision",
    ["", "has space", "a..b", "x.lock", "/lead", "trail/", "a//b", "@", "a@{1}", "v1~1", ".hidden", "end."],
)
def test_invalid_revisions(revision: str) -> None:
    with pytest.raises(ValueError, match="neither a 40-hex commit sha nor a valid branch/tag name"):
        check_revision(revision)


@pytest.mark.parametrize(
    "pattern", ["*.safetensors", "model-[0-9]*.bin", "1_Pooling/*", "[!.]*", "tokenizer?.json"]
)
def test_valid_globs(pattern: str) -> None:
    assert check_glob(pattern) == pattern


@pytest.mark.parametrize(
    "pattern", ["", " *.json", "/etc/*", "..", "a/../b", "x[ab", "x]y", "a\\b", "tab\there"]
)
def test_invalid_globs(pattern: str) -> None:
    with pytest.raises(ValueError):
        check_glob(pattern)


def test_spec_sha256_ignores_comments_and_formatting(tmp_path: Path, repo_root: Path) -> None:
    original = repo_root / "modelcars" / "minilm-demo.yaml"
    reformatted = tmp_path / "minilm-demo.yaml"
    spec = load_spec(original)
    reformatted.write_text(
        "# reordered, restyled, commented\n"
        "serving: {served_model_name: minilm-demo}\n"
        "image:\n"
        f"  base: '{spec.image.base}'\n"
        f"  repository: {spec.image.repository}\n"
        "huggingface:\n"
        f"  ignore_patterns: {json.dumps(list(spec.huggingface.ignore_patterns))}\n"
        f"  allow_patterns: {json.dumps(list(spec.huggingface.allow_patterns))}\n"
        f'  revision: "{spec.huggingface.revision}"\n'
        f"  repo: {spec.huggingface.repo}\n"
    )
    assert spec_sha256(load_spec(reformatted)) == spec_sha256(spec)
    changed = tmp_path / "changed" / "minilm-demo.yaml"
    changed.parent.mkdir()
    changed.write_text(original.read_text().replace("vocab.txt", "vocab*.txt"))
    assert spec_sha256(load_spec(changed)) != spec_sha256(spec)


def test_the_image_user_is_a_numeric_non_root_uid_kserve_s_by_default(repo_root: Path) -> None:
    text = (repo_root / "modelcars" / "minilm-demo.yaml").read_text()
    assert load_spec_text(text, source_name="modelcars/minilm-demo.yaml").image.user == 1010
    base_line = next(ln for ln in text.splitlines() if ln.startswith("  base: "))
    own = load_spec_text(
        text.replace(base_line, base_line + "\n  user: 2000"), source_name="modelcars/m.yaml"
    )
    assert own.image.user == 2000
    for bad in ("0", "-1", "root", "1010.5"):
        with pytest.raises(InputError, match=r"^modelcars/m\.yaml:\d+: image\.user: "):
            load_spec_text(
                text.replace(base_line, base_line + f"\n  user: {bad}"), source_name="modelcars/m.yaml"
            )

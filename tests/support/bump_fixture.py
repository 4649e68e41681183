"""A GitOps repository for bump tests: every reference style, rendered from templates with chosen digests.

Templates carry `%%model%%` where that model's digest goes, so a test states the exact expected
bytes of every file after a bump by rendering the same templates with the new digest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import require_tool

REGISTRY = "us-central1-docker.pkg.dev/llm-platform-example/modelcars"
HF_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def digest_of(label: str) -> str:
    """A well-formed sha256 digest, different for every label."""
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def repository(model: str) -> str:
    return f"{REGISTRY}/{model}"


def spec_text(model: str, revision: str = "main") -> str:
    return (
        f"# modelcar spec for {model}\n"
        "huggingface:\n"
        f"  repo: Example/{model}\n"
        f"  revision: {revision}\n"
        '  allow_patterns: ["*.json", "*.safetensors"]\n'
        "image:\n"
        f"  repository: {repository(model)}\n"
        "serving:\n"
        f"  served_model_name: {model}\n"
    )


R = repository("qwen-a")
AWQ = repository("qwen-a-awq")
VLLM = "docker.io/vllm/vllm-openai:v0.8.5@" + digest_of("vllm")
LONG_COMMENT = "# " + "a long comment that runs past any sane line width, " * 4

# Each reference style, in files with comments, anchors, aliases, merges, flow and block styles,
# several documents, `---`/`...` markers, long lines, quoted and plain scalars.
TEMPLATES: dict[str, str] = {
    "gitops/apps/qwen-a/inferenceservice.yaml": f"""\
# KServe InferenceServices; the modelcar is pinned by digest (llm-platform bump edits it).
# yamllint disable rule:line-length
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: qwen-a
  annotations:
    argocd.argoproj.io/sync-wave: "2"
spec:
  predictor:
    model:
      modelFormat: {{name: vLLM}}
      storageUri: oci://{R}@%%qwen-a%%  # modelcar: do not edit by hand
      args: ["--served-model-name", 'qwen-a', --max-model-len=8192]

---
# a prefix of our repository is a different repository: must stay as is
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: qwen-a-awq
spec:
  predictor:
    model:
      storageUri: "oci://{AWQ}@%%qwen-a-awq%%"
...
""",
    "gitops/apps/qwen-a/vllm.yaml": f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm-qwen-a
  labels: &labels
    app.kubernetes.io/name: vllm-qwen-a
spec:
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels: *labels
    spec:
      initContainers:
        - name: warm
          # tagged and pinned: the tag is kept, only the digest moves
          image: {R}:v3@%%qwen-a%%
          command: [sh, -c, "ls /models"]
      containers:
      - name: vllm
        image: '{VLLM}'
        args:
          - --model=/models
          - --served-model-name=qwen-a   {LONG_COMMENT}
        volumeMounts: [{{name: model, mountPath: /models, readOnly: true}}]
      volumes:
        - name: model
          image: {{reference: {R}@%%qwen-a%%, pullPolicy: IfNotPresent}}
""",
    "gitops/charts/vllm/values.yaml": f"""\
# Helm values of the vllm chart
modelcar: &modelcar
  repository: {R}
  digest: "%%qwen-a%%"   # bumped by CI
  tag: ""
defaults:
  image: &img {R}@%%qwen-a%%
sidecar:
  image: *img
copy:
  <<: *modelcar
  pullPolicy: IfNotPresent
note: >-
  {"folded text that is much longer than eighty columns so that a re-emitting YAML library would wrap it " * 2}
awq:
  repository: {AWQ}
  digest: %%qwen-a-awq%%
""",
    "gitops/charts/vllm/templates/deployment.yaml": """\
{{- if .Values.enabled }}
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - image: "{{ .Values.modelcar.repository }}@{{ .Values.modelcar.digest }}"
{{- end }}
""",
    "gitops/overlays/prod/kustomization.yaml": f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../apps/qwen-a
images:
# the modelcar, renamed from a placeholder
- name: modelcar-placeholder
  newName: {R}
  digest: %%qwen-a%%
- name: {AWQ}
  digest: '%%qwen-a-awq%%'
- name: {R}
  newName: {R}-mirror  # renamed away: this entry pins the mirror, not ours
  digest: {digest_of("mirror")}
""",
    "gitops/argocd/qwen-a.yaml": f"""\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: qwen-a, namespace: argocd}}
spec:
  source:
    path: gitops/overlays/prod
    kustomize:
      images:
        - "{R}@%%qwen-a%%"
""",
    # CRLF line endings must survive byte for byte.
    "gitops/apps/qwen-a/pod-crlf.yaml": (
        "apiVersion: v1\r\nkind: Pod\r\nmetadata:\r\n  name: probe\r\nspec:\r\n  containers:\r\n"
        f"    - name: probe\r\n      image: {R}@%%qwen-a%%\r\n"
    ),
    "gitops/README.md": f"The tree references {R} in YAML only; this file is not YAML and is never edited.\n",
}


def render(template: str, digests: dict[str, str]) -> str:
    for model, digest in digests.items():
        template = template.replace(f"%%{model}%%", digest)
    assert "%%" not in template, template
    return template


def git_env(home: Path) -> dict[str, str]:
    """Hermetic git: no user/system config (so no identity, no helpers) but what a test sets."""
    config = home / "gitconfig"
    config.touch()
    env = dict(os.environ)
    env.update(
        {
            "GIT_CONFIG_GLOBAL": str(config),
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(home),
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    for var in (
        "GIT_TOKEN",
        "GIT_USERNAME",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
    ):
        env.pop(var, None)
    return env


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [require_tool("git"), "-C", str(cwd), *args], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def commit_all(repo: Path, message: str, env: dict[str, str]) -> str:
    git(repo, "add", "-A", env=env)
    git(
        repo,
        "-c",
        "user.name=Fixture",
        "-c",
        "user.email=fixture@example.invalid",
        "commit",
        "-q",
        "-m",
        message,
        env=env,
    )
    return git(repo, "rev-parse", "HEAD", env=env).strip()


@dataclass(frozen=True)
class Link:
    """A symlink in a fixture tree, to `target` as written (relative to the link's directory, or absolute)."""

    target: str


def write_tree(root: Path, files: Mapping[str, str | bytes | Link]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            path.symlink_to(content.target)
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)


def make_small_repo(root: Path, env: dict[str, str], files: Mapping[str, str | bytes | Link]) -> Path:
    """A git repository holding the spec of qwen-a and `files` (nothing else), committed."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main", env=env)
    write_tree(root, {"modelcars/qwen-a.yaml": spec_text("qwen-a"), **files})
    commit_all(root, "fixture", env)
    return root


def make_repo(root: Path, env: dict[str, str], digests: dict[str, str], extra_models: list[str] = ()) -> Path:
    """A git repository with the templates rendered with `digests`, specs for qwen-a/qwen-a-awq and `extra_models`."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main", env=env)
    files = {rel: render(text, digests) for rel, text in TEMPLATES.items()}
    for model in ("qwen-a", "qwen-a-awq", *extra_models):
        files[f"modelcars/{model}.yaml"] = spec_text(model)
    write_tree(root, files)
    commit_all(root, "fixture", env)
    return root


def make_bare_remote(source: Path, bare: Path, env: dict[str, str]) -> Path:
    subprocess.run(
        [require_tool("git"), "clone", "-q", "--bare", str(source), str(bare)],
        check=True,
        env=env,
        capture_output=True,
    )
    return bare


def clone(remote: str, dest: Path, env: dict[str, str]) -> Path:
    proc = subprocess.run(
        [require_tool("git"), "clone", "-q", remote, str(dest)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"git clone {remote} failed:\n{proc.stderr}")
    return dest

"""llm-platform: the delivery pipeline of an LLM-serving platform on Kubernetes.

Builds modelcars (OCI images carrying Hugging Face weights under /models, pinned by digest),
runs OpenTofu on the substrate, lints the Argo CD GitOps tree and bumps modelcar digests in git.
The same core runs from the `llm-platform` command and from this Dagger module.
"""

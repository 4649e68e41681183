"""Modelcars: OCI images carrying a model's weights under /models, built reproducibly from a spec.

spec (modelcars/<name>.yaml) -> source (local dir or Hugging Face) -> image plan (base layers +
one tar layer per file) -> OCI layout (or a registry, elsewhere).
"""

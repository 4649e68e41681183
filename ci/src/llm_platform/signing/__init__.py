"""Signed, attested modelcars: a cosign-compatible signature of the manifest digest (the `sha256-<hex>.sig`
tag), an OpenSSF Model Signing bundle over the per-file sha256 list, a SLSA v1 provenance statement and a
ModelPack manifest over the same layer blobs, attached as OCI 1.1 referrers; and their verification.

What the CLI needs to describe its options lives here, so `llm-platform` starts without the crypto stack.
"""

# A PEM private key (its text, not a path) and its password, for CI runners that hold them as secrets.
SIGNING_KEY_ENV = "LLM_PLATFORM_SIGNING_KEY"
SIGNING_KEY_PASSWORD_ENV = "LLM_PLATFORM_SIGNING_KEY_PASSWORD"

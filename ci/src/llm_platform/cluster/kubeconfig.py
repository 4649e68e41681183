"""A kubeconfig for the GKE cluster that `tofu apply` created, from its typed outputs: the endpoint and CA
as GKE reports them, and the bearer token (a Google OAuth access token is one for GKE) handed over by an
exec credential plugin that prints it from an environment variable, so the token itself is never written
into the kubeconfig, a file, a log or an argument."""

from __future__ import annotations

import yaml

from llm_platform.tofu.platform_outputs import PlatformOutputs

CONTEXT = "platform"


def gke_kubeconfig(outputs: PlatformOutputs, token_env: str) -> str:
    """kubeconfig YAML for `outputs`' cluster, authenticating with the token in $`token_env`."""
    # The ExecCredential kubectl expects on the plugin's stdout (client.authentication.k8s.io/v1); OAuth
    # access tokens hold no characters that need JSON escaping.
    credential = (
        '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}'
    )
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": outputs.cluster_name,
                    "cluster": {
                        "server": f"https://{outputs.cluster_endpoint}",
                        "certificate-authority-data": outputs.cluster_ca_certificate,
                    },
                }
            ],
            "users": [
                {
                    "name": "deploy",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1",
                            "command": "sh",
                            "args": ["-c", f"printf '{credential}' \"${token_env}\""],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
            "contexts": [{"name": CONTEXT, "context": {"cluster": outputs.cluster_name, "user": "deploy"}}],
            "current-context": CONTEXT,
        },
        sort_keys=False,
    )

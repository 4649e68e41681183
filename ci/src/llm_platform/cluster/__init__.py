"""Installing the platform on a cluster: what to apply, in what order, what exists, what "done" means.

Everything here is pure except `kube.Kubectl`, the one adapter that talks to a cluster (through the
pinned kubectl, with the user's kubeconfig and context). Each step computes the objects it needs from
the GitOps tree and the cluster's answers, so `--dry-run` prints exactly what a run would apply.
"""

"""hetc.bundle: what a compile writes (plan, kernels, deployment manifests, report) and how it is written."""

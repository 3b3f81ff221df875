"""Names the exporters derive from user text: DNS labels for objects, label values for Kubernetes labels.

Shared by the Kubernetes and Ray Serve exporters and the engine configuration (hetc.bundle.vllm), so none of
them imports another for a name.
"""

from __future__ import annotations

import hashlib
import re

MAX_DNS_LABEL = 63


def dns_label(text: str, max_len: int = MAX_DNS_LABEL) -> str:
    """A DNS-1035 label (lower-case letters, digits, '-', starts with a letter) derived from text."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not label or not label[0].isalpha():
        label = "x-" + label if label else "x"
    if len(label) > max_len:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        label = label[: max_len - 9].rstrip("-") + "-" + digest
    return label


def label_value(text: str) -> str:
    """A Kubernetes label value: <= 63 of [A-Za-z0-9-_.], alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")
    if len(value) > MAX_DNS_LABEL:
        value = value[:54].strip("-_.") + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return value

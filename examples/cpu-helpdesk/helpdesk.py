"""The example's code: the embedder of its index, the code nodes and the status tool (bound in bindings.yaml).

The embedder hashes words into 32 buckets (feature hashing, L2-normalised): no model download, and the same
function built index/vectors.npy, so queries and documents live in one space. Replace it with a real
embedding model (and recompile with that model's dimension) for real use.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

DIM = 32
SMALLTALK = {"hi", "hello", "hey", "thanks", "thank", "bye"}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def embed(text: str) -> np.ndarray:
    vector = np.zeros(DIM, np.float32)
    for word in words(text):
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % DIM] += 1.0 if digest[1] % 2 else -1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def triage(text: str, inputs: list[dict]) -> dict:
    """Short greetings are small talk; everything else goes to the agent."""
    tokens = words(text)
    branch = "smalltalk" if tokens and len(tokens) <= 3 and set(tokens) & SMALLTALK else "prepare"
    return {"text": text, "branch": branch}


def smalltalk(text: str, inputs: list[dict]) -> str:
    return "Hello! Ask me about accounts, billing, VPN or e-mail."


def prepare(text: str, inputs: list[dict]) -> str:
    return " ".join(text.split())


def status(query: str = "") -> dict:
    return {"vpn": "operational", "email": "degraded: delays up to 10 minutes", "billing": "operational"}

"""Rebuild index/vectors.npy from index/documents.jsonl with the example's embedder (deterministic)."""

from pathlib import Path

import numpy as np
from helpdesk import embed

HERE = Path(__file__).parent
if __name__ == "__main__":
    import json

    lines = (HERE / "index" / "documents.jsonl").read_text().splitlines()
    vectors = np.stack([embed(json.loads(line)["text"]) for line in lines if line.strip()])
    np.save(HERE / "index" / "vectors.npy", vectors.astype(np.float32))
    print(f"{vectors.shape[0]} vectors of {vectors.shape[1]} elements")

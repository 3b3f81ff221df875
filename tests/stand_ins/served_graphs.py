"""Test fixtures for the examples whose model stages an engine serves for the runtime (no GPU here: every
engine is the OpenAI stand-in, stand_ins/openai_llm.py):

- examples/rag-assistant.yaml: its embed stages are placed on GPUs (an engine serves bge-large-en-v1.5),
  its retrieval ranks a small random index of the model's width (1024) bound here, with no `embed` callable;
- examples/guarded-chat.yaml: Llama Guard 3 screens the question on a GPU before Llama 3 8B answers;
- the RAG example with a cross-encoder (bge-reranker-v2-m3) rescoring the retrieval's top 8 (`reranked`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EMBED_DIM = 1024  # bge-large-en-v1.5's width: the spec's retrieval dim, the kernel's
DOCUMENTS = 40


def compile_example(name: str, out: Path) -> Path:
    return compile_spec_file(EXAMPLES / f"{name}.yaml", out)


def compile_spec_file(spec: Path, out: Path) -> Path:
    from hetc.compiler import CompileOptions, compile_spec, write

    write(compile_spec(str(spec), CompileOptions()), out)
    return out


def compile_reranked(folder: Path, pool: list[str] | None = None) -> Path:
    """The RAG example whose retrieval reranks its top 8 with bge-reranker-v2-m3 (on `pool`, when given);
    the bundle in folder/bundle."""
    spec = yaml.safe_load((EXAMPLES / "rag-assistant.yaml").read_text())
    spec["name"] = "rag-reranked"
    spec["models"]["reranker"] = {"preset": "bge-reranker-v2-m3"}
    spec["nodes"]["retrieve"]["rerank_model"] = "reranker"
    if pool is not None:
        spec["hardware"]["pool"] = pool
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return compile_spec_file(folder / "spec.yaml", folder / "bundle")


def document_text(doc_id: str) -> str:
    """The text of an index document ("doc-07" -> "document 7")."""
    return f"document {int(doc_id.removeprefix('doc-'))}"


def write_index(folder: Path, seed: int = 7) -> tuple[np.ndarray, list[dict]]:
    """A random float32 index of DOCUMENTS x EMBED_DIM and its documents (vectors.npy, documents.jsonl)."""
    vectors = np.random.default_rng(seed).standard_normal((DOCUMENTS, EMBED_DIM)).astype(np.float32)
    documents = [{"id": f"doc-{i:02d}", "text": document_text(f"doc-{i:02d}")} for i in range(DOCUMENTS)]
    np.save(folder / "vectors.npy", vectors)
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in documents))
    return vectors, documents


def rag_bindings(path: Path, llm_url: str) -> Path:
    """Both models on the stand-in; the retrieval node binds its index and no `embed` callable."""
    write_index(path.parent)
    bindings = {"hetc-bindings": 1,
                "models": {"chat": {"endpoint": llm_url}, "embedder": {"endpoint": llm_url}},
                "nodes": {"retrieve": {"vectors": "vectors.npy", "documents": "documents.jsonl"}}}
    path.write_text(yaml.safe_dump(bindings))
    return path


def reranked_bindings(path: Path, llm_url: str) -> Path:
    """rag_bindings with the cross-encoder on the stand-in too."""
    rag_bindings(path, llm_url)
    bindings = yaml.safe_load(path.read_text())
    bindings["models"]["reranker"] = {"endpoint": llm_url}
    path.write_text(yaml.safe_dump(bindings))
    return path


def guarded_bindings(path: Path, llm_url: str) -> Path:
    bindings = {"hetc-bindings": 1, "models": {"guard": {"endpoint": llm_url}, "chat": {"endpoint": llm_url}}}
    path.write_text(yaml.safe_dump(bindings))
    return path


def expected_top(question: str, folder: Path, top_k: int) -> list[str]:
    """The document ids numpy ranks first (cosine) for the stand-in engine's vector of the question."""
    from stand_ins.openai_llm import StandInLLM

    vectors = np.load(folder / "vectors.npy")
    ids = [json.loads(line)["id"] for line in (folder / "documents.jsonl").read_text().splitlines()]
    query = np.asarray(StandInLLM.embedding(question, EMBED_DIM), dtype=np.float64)
    scores = vectors.astype(np.float64) @ query / np.linalg.norm(vectors, axis=1)
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:top_k]]


def reranked_order(question: str, folder: Path, top_k: int) -> list[str]:
    """The search's top_k for the question in the stand-in cross-encoder's order, most relevant first."""
    from stand_ins.openai_llm import StandInLLM

    return sorted(expected_top(question, folder, top_k),
                  key=lambda doc_id: -StandInLLM.relevance(question, document_text(doc_id)))

"""What the importer writes when neither the graph nor a trace says (docs/import.md "Defaults").

Each value is a placeholder so the imported spec validates and compiles at once; each is listed as a TODO in
the spec and in the command's output, to be replaced by a measurement.
"""

from __future__ import annotations

import re

from hetc.model.models import resolve_preset

# hetc's own defaults for these node fields (docs/spec.md): the request, one LLM call.
INPUT_TOKENS = 64
LLM_INPUT_TOKENS = 512
LLM_OUTPUT_TOKENS = 256
# One HTTP API round trip: an order of magnitude, not a measurement (a search API answers in a few hundred ms,
# its tail a few seconds).
TOOL_LATENCY_MS = 500
TOOL_LATENCY_P99_MS = 2000
# A Python function that reads and updates the graph state: an order of magnitude, not a measurement.
CODE_CPU_MS = 1
# A retriever over a vector store: one million 1024-dimensional vectors (bge-large-en-v1.5's width), and
# LangChain's VectorStoreRetriever default of k=4 results when the retriever does not set search_kwargs["k"].
RETRIEVER_VECTORS = 1_000_000
RETRIEVER_DIM = 1024
RETRIEVER_TOP_K = 4
# The service level and traffic are the user's decision, not the graph's: one request per second, and
# per-token targets every LLM placement can meet (50 ms between tokens is faster than people read; a first
# token within 2 s). No end-to-end target: it depends on loop bounds the user should first measure.
REQUESTS_PER_S = 1
TTFT_MS = 2000
TBT_MS = 50
# A chat model whose name maps to no hetc preset is planned as this one until the user says what it is.
PLACEHOLDER_PRESET = "llama-3-70b"
# Highest loop bound the spec accepts (docs/spec.md, Limits).
MAX_ITERATIONS = 10_000


def preset_for(model_name: str) -> str | None:
    """The hetc preset a provider's model name denotes (a decoder), or None.

    `meta-llama/Meta-Llama-3-70B-Instruct`, `llama3:70b` and `llama-3.1-8b-instruct` map to their presets;
    the org prefix, `Meta-`, chat/instruct suffixes and version tails are not part of the architecture.
    """
    name = model_name.strip().lower().rsplit("/", 1)[-1].replace(":", "-").replace("_", "-")
    name = name.removeprefix("meta-")
    name = re.sub(r"-(instruct|chat|hf|it|turbo)\b", "", name)
    name = re.sub(r"-v\d+(\.\d+)*$", "", name)
    for candidate in (name, re.sub(r"^llama(\d)", r"llama-\1", name)):
        arch = resolve_preset(candidate)
        if arch is not None and arch.kind == "decoder":
            return arch.name
    return None

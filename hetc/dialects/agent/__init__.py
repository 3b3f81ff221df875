"""The `agent` dialect: the agent graph as the user wrote it.

One op per spec node, SSA values for edges typed by the payload they carry. Node ids are the ops'
symbol names (`@"stt"`); models are module-level `agent.model` symbols holding the architecture, so
nothing after the frontend needs the YAML. Control flow stays explicit: `agent.branch` passes a value
on with a probability, `agent.loop` runs its body at most 1 + max_iterations times and carries the
values of its back edges to the next iteration.

The dialect by job: payloads.py (edge types), fields.py (what every number and choice is checked against),
models.py (agent.model and #agent.arch), base.py (the common node op shape), nodes.py (the work node kinds,
each owning its spec fields), structure.py (graph, input, output, branch, call, loop).
"""

from xdsl.ir import Dialect

from hetc.dialects.agent.base import ModelNodeOp, NodeOp
from hetc.dialects.agent.fields import check_number, parse_named_values
from hetc.dialects.agent.models import ArchAttr, ModelOp
from hetc.dialects.agent.nodes import (
                                       ComputeOp,
                                       EmbeddingOp,
                                       GuardrailOp,
                                       KVCacheOp,
                                       LLMOp,
                                       MemoryLookupOp,
                                       MemoryStoreOp,
                                       ModelCallOp,
                                       SpeechToTextOp,
                                       TextToSpeechOp,
                                       ToolOp,
)
from hetc.dialects.agent.payloads import (
                                       PAYLOAD_TYPES,
                                       AudioType,
                                       DocumentsType,
                                       EmbeddingType,
                                       JsonType,
                                       KVType,
                                       Payload,
                                       PayloadType,
                                       TextType,
                                       TokensType,
                                       payload_type,
)
from hetc.dialects.agent.structure import BranchOp, CallOp, GraphOp, InputOp, LoopOp, LoopYieldOp, OutputOp

Agent = Dialect(
    "agent",
    [
        ModelOp, GraphOp, InputOp, OutputOp, LLMOp, SpeechToTextOp, TextToSpeechOp, EmbeddingOp, ModelCallOp,
        KVCacheOp, ToolOp, MemoryLookupOp, MemoryStoreOp, ComputeOp, GuardrailOp, BranchOp, CallOp, LoopOp, LoopYieldOp,
    ],
    [TextType, TokensType, AudioType, EmbeddingType, DocumentsType, KVType, JsonType, ArchAttr],
)

__all__ = [
    "PAYLOAD_TYPES", "Agent", "ArchAttr", "AudioType", "BranchOp", "CallOp", "ComputeOp", "DocumentsType",
    "EmbeddingOp", "EmbeddingType", "GraphOp", "GuardrailOp", "InputOp", "JsonType", "KVCacheOp", "KVType",
    "LLMOp", "LoopOp", "LoopYieldOp", "MemoryLookupOp", "MemoryStoreOp", "ModelCallOp", "ModelNodeOp", "ModelOp",
    "NodeOp", "OutputOp", "Payload", "PayloadType", "SpeechToTextOp", "TextToSpeechOp", "TextType", "TokensType",
    "ToolOp", "check_number", "parse_named_values", "payload_type",
]

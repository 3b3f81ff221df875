"""The edge types of the `agent` dialect (the payload an edge carries: `!agent.text`, `!agent.audio`, ...)
and the operand constraint that names the payloads a node kind accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.ir import Attribute, ParametrizedAttribute, TypeAttribute
from xdsl.irdl import AttrConstraint, irdl_attr_definition
from xdsl.irdl.constraints import VerificationContext
from xdsl.utils.exceptions import VerifyException


class PayloadType(ParametrizedAttribute, TypeAttribute):
    """Base of the edge types; `payload` is the spec's name for it."""

    PAYLOAD: ClassVar[str] = ""


@irdl_attr_definition
class TextType(PayloadType):
    name = "agent.text"
    PAYLOAD = "text"


@irdl_attr_definition
class TokensType(PayloadType):
    name = "agent.tokens"
    PAYLOAD = "tokens"


@irdl_attr_definition
class AudioType(PayloadType):
    name = "agent.audio"
    PAYLOAD = "audio"


@irdl_attr_definition
class EmbeddingType(PayloadType):
    name = "agent.embedding"
    PAYLOAD = "embedding"


@irdl_attr_definition
class DocumentsType(PayloadType):
    name = "agent.documents"
    PAYLOAD = "documents"


@irdl_attr_definition
class KVType(PayloadType):
    name = "agent.kv"
    PAYLOAD = "kv"


@irdl_attr_definition
class JsonType(PayloadType):
    name = "agent.json"
    PAYLOAD = "json"


PAYLOAD_TYPES: dict[str, type[PayloadType]] = {
    t.PAYLOAD: t for t in (TextType, TokensType, AudioType, EmbeddingType, DocumentsType, KVType, JsonType)
}


def payload_type(name: str) -> PayloadType:
    return PAYLOAD_TYPES[name]()


@dataclass(frozen=True)
class Payload(AttrConstraint):
    """An operand's declared type: one of a node kind's accepted payloads (its ACCEPTED_INPUTS)."""

    types: tuple[type[PayloadType], ...]

    def verify(self, attr: Attribute, constraint_context: VerificationContext) -> None:
        if not isinstance(attr, self.types):
            names = ", ".join(f"!{t.name}" for t in self.types)
            raise VerifyException(f"input of type {attr} is not accepted; expected {names}")

    def get_bases(self) -> set[type[Attribute]]:
        return set(self.types)

    def mapping_type_vars(self, type_var_mapping) -> Payload:
        return self


TEXTUAL = (TextType, TokensType, DocumentsType, JsonType, EmbeddingType)
LLM_INPUTS = (*TEXTUAL, KVType)  # a kv_cache node can hand an LLM its conversation's cache
ANY_PAYLOAD = tuple(PAYLOAD_TYPES.values())

"""`agent.model`, a model the graph uses (module level), and its architecture attribute `#agent.arch<...>`."""

from __future__ import annotations

import functools

from xdsl.dialects.builtin import DictionaryAttr, IntegerAttr, StringAttr, SymbolNameConstraint
from xdsl.ir import Attribute, ParametrizedAttribute
from xdsl.irdl import IRDLOperation, ParsePropInAttrDict, irdl_attr_definition, irdl_op_definition, prop_def, traits_def
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from hetc.dialects.agent.fields import check_number, parse_named_values
from hetc.dialects.trait_lookup import MemoisedTraits
from hetc.model.arch import PRECISION_BYTES, ModelArch
from hetc.spec.rules import ARCH_RULES, arch_problems


@irdl_attr_definition
class ArchAttr(ParametrizedAttribute):
    """#agent.arch<kind = "decoder", n_layers = 32, d_model = 4096, ..., tied_embeddings = false>: a model's
    architecture, each field one of hetc.model.models.ModelArch's, typed and limited by the spec loader's rule for
    it (ARCH_RULES): integers, booleans (true/false) and strings. Fields left out take ModelArch's defaults."""

    name = "agent.arch"
    fields: DictionaryAttr  # field name -> IntegerAttr (i64; booleans 0/1) | StringAttr

    def __init__(self, values: dict[str, int | bool | str] | DictionaryAttr):
        def attr(value):
            if isinstance(value, Attribute):
                return value
            return StringAttr(value) if isinstance(value, str) else IntegerAttr(int(value), 64)

        items = values.data.items() if isinstance(values, DictionaryAttr) else values.items()
        super().__init__(DictionaryAttr({k: attr(v) for k, v in items}))

    @property
    def data(self) -> dict[str, Attribute]:
        """The fields as builtin attributes by name (as the dictionary it replaces held them)."""
        return self.fields.data

    def values(self) -> dict[str, int | bool | str]:
        out: dict[str, int | bool | str] = {}
        for key, attr in self.fields.data.items():
            if isinstance(attr, StringAttr):
                out[key] = attr.data
            else:
                out[key] = bool(attr.value.data) if ARCH_RULES[key].type == "bool" else attr.value.data
        return out

    def model_arch(self, name: str) -> ModelArch:
        """The architecture as the cost model takes it; `name` (the agent.model symbol) where it names none."""
        return _model_arch(self, name)

    @classmethod
    def parse_parameters(cls, parser: AttrParser):
        def value() -> Attribute:
            if (text := parser.parse_optional_str_literal()) is not None:
                return StringAttr(text)
            if parser.parse_optional_keyword("true") is not None:
                return IntegerAttr(1, 64)
            if parser.parse_optional_keyword("false") is not None:
                return IntegerAttr(0, 64)
            return IntegerAttr(parser.parse_integer(), 64)

        return [DictionaryAttr(parse_named_values(parser, "agent.arch", value))]

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            for index, (key, attr) in enumerate(self.fields.data.items()):
                printer.print_string(f"{', ' if index else ''}{key} = ")
                if isinstance(attr, StringAttr):
                    printer.print_string_literal(attr.data)
                elif ARCH_RULES.get(key) is not None and ARCH_RULES[key].type == "bool":
                    printer.print_string("true" if attr.value.data else "false")
                else:
                    printer.print_string(str(attr.value.data))

    def verify(self) -> None:
        """Each field against the spec loader's rule for it: known, of its type, within its limit."""
        for key, attr in self.fields.data.items():
            rule = ARCH_RULES.get(key)
            if rule is None:
                raise VerifyException(f"agent.arch: unknown field '{key}'")
            if rule.type in ("int", "bool"):
                if not isinstance(attr, IntegerAttr):
                    raise VerifyException(f"agent.arch: {key} must be {'an integer' if rule.type == 'int' else 'true or false'}")
                value = attr.value.data
                if rule.type == "bool" and value not in (0, 1):
                    raise VerifyException(f"agent.arch: {key} must be true or false, got {value}")
                check_number("agent.arch", key, value, rule.allow_zero or rule.type == "bool", rule.limit)
            else:
                if not isinstance(attr, StringAttr):
                    raise VerifyException(f"agent.arch: {key} must be a string")
                if rule.choices and attr.data not in rule.choices:
                    raise VerifyException(f"agent.arch: {key} must be one of {'|'.join(rule.choices)}, "
                                          f"got {attr.data!r}")


@functools.lru_cache(maxsize=1024)
def _model_arch(arch: ArchAttr, name: str) -> ModelArch:
    """Read once per (architecture, name): the frontend, placement and plan ask tens of thousands of times on a
    large graph. Both the attribute and ModelArch are immutable."""
    return ModelArch(**{"name": name, **arch.values()})


@irdl_op_definition
class ModelOp(MemoisedTraits, IRDLOperation):
    """A model the graph uses: architecture numbers and precision (module level)."""

    name = "agent.model"
    sym_name = prop_def(SymbolNameConstraint())
    arch = prop_def(ArchAttr)
    precision = prop_def(StringAttr)
    kv_precision = prop_def(StringAttr)
    traits = traits_def(SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sym_name attr-dict"

    def verify_(self) -> None:
        for key in ("kind", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size"):
            if key not in self.arch.data:
                raise VerifyException(f"agent.model @{self.sym_name.data}: arch lacks '{key}'")
        for key in ("precision", "kv_precision"):
            if getattr(self, key).data not in PRECISION_BYTES:
                raise VerifyException(f"agent.model @{self.sym_name.data}: {key} must be one of "
                                      f"{'|'.join(PRECISION_BYTES)}, got {getattr(self, key).data!r}")
        for _, message in arch_problems(self.arch.model_arch(self.sym_name.data)):
            raise VerifyException(f"agent.model @{self.sym_name.data}: {message}")

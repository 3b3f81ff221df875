"""Trait lookup memoised per op class, for every hetc op.

xDSL's `Operation.get_trait` scans the class's traits with `isinstance` on each call. hetc asks an op for its
interfaces (hetc/dialects/interfaces.py) and xDSL's symbol lookups ask each ancestor for `SymbolTable` about
a million times on a 10,000-node graph: a tenth of the compile. An op class's traits never change, so the
answer for a (class, trait type) pair is found once."""

from __future__ import annotations

import functools


class MemoisedTraits:
    """Mixed into hetc's op base classes, before IRDLOperation."""

    @classmethod
    def get_trait(cls, trait):
        if isinstance(trait, type):
            return _first_trait(cls, trait)
        return super().get_trait(trait)  # a trait instance: compared by value, rare


@functools.cache
def _first_trait(op_type: type, trait_type: type):
    return next((t for t in op_type.traits if isinstance(t, trait_type)), None)

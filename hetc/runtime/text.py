"""Foreign text (a model server's or a tool's answer, an exception message) made safe to echo in an error."""

from __future__ import annotations

import re

MAX_ERROR_TEXT = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """No control characters, bounded length."""
    text = _CONTROL.sub(" ", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."

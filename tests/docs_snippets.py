"""Code in the Markdown docs, as a reader would paste it: Python snippets and `hetc ...` command lines.

Indented code blocks are kept as they stand in the file: a shell command that continues inside a quoted
string keeps the indentation of its continuation lines, as it does when pasted from the file.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

PYTHON_FENCES = ("python", "py")
SHELL_OPERATORS = ("|", "&&", "||", ";")
_FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)")


@dataclass(frozen=True)
class Block:
    file: Path
    line: int  # 1-based line of the block's first code line
    language: str  # "" for an indented block or an untagged fence
    lines: tuple[str, ...]  # as in the file (indented blocks keep their indentation)


@dataclass(frozen=True)
class Snippet:
    where: str  # file:line
    code: str


@dataclass(frozen=True)
class Command:
    where: str
    argv: tuple[str, ...]  # the words after `hetc`
    stdin_file: str | None  # `cat FILE | hetc ...`


def code_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    previous_blank = True
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            start = index + 1
            index = start
            while index < len(lines) and not lines[index].strip().startswith("```"):
                index += 1
            blocks.append(Block(path, start + 1, fence.group(2).lower(), tuple(lines[start:index])))
            index += 1
            previous_blank = False
            continue
        if previous_blank and line.startswith("    ") and line.strip():
            start = index
            while index < len(lines) and (lines[index].startswith("    ") or not lines[index].strip()):
                index += 1
            body = lines[start:index]
            while body and not body[-1].strip():
                body.pop()
            blocks.append(Block(path, start + 1, "", tuple(body)))
            previous_blank = True
            continue
        previous_blank = not line.strip()
        index += 1
    return blocks


def shell_lines(block: Block) -> list[tuple[int, list[str]]]:
    """(line, words) of every shell command in a block; `$ ` prompts dropped, continuations joined."""
    commands: list[tuple[int, list[str]]] = []
    pending, start = "", 0
    for offset, raw in enumerate(block.lines):
        if not pending:
            raw = raw.strip()
            if raw.startswith("$ "):
                raw = raw[2:]
            start = block.line + offset
        pending += raw
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quoted string goes on: keep the line break, as a shell does
            pending += "\n"
            continue
        commands.append((start, words))
        pending = ""
    return commands


def _segments(words: list[str]) -> list[list[str]]:
    segments: list[list[str]] = [[]]
    for word in words:
        if word in SHELL_OPERATORS:
            segments.append([word])
        else:
            segments[-1].append(word)
    return segments


def python_snippets(path: Path) -> list[Snippet]:
    """Fenced python blocks, and the program of every `python -c` command line."""
    found = []
    for block in code_blocks(path):
        if block.language in PYTHON_FENCES:
            found.append(Snippet(f"{path.name}:{block.line}", "\n".join(block.lines) + "\n"))
        elif block.language not in ("yaml", "json", "text"):
            for line, words in shell_lines(block):
                for segment in _segments(words):
                    segment = [w for w in segment if w not in SHELL_OPERATORS]
                    if len(segment) >= 3 and segment[0] in ("python", "python3") and segment[1] == "-c":
                        found.append(Snippet(f"{path.name}:{line}", segment[2]))
    return found


def hetc_commands(path: Path) -> list[Command]:
    found = []
    for block in code_blocks(path):
        if block.language in (*PYTHON_FENCES, "yaml", "json", "text"):
            continue
        for line, words in shell_lines(block):
            segments = _segments(words)
            for number, segment in enumerate(segments):
                operator = segment[0] if segment and segment[0] in SHELL_OPERATORS else None
                segment = segment[1:] if operator else segment
                if not segment or segment[0] != "hetc":
                    continue
                before = segments[number - 1] if number else []
                before = before[1:] if before and before[0] in SHELL_OPERATORS else before
                piped = operator == "|" and len(before) == 2 and before[0] == "cat"
                found.append(Command(f"{path.name}:{line}", tuple(segment[1:]), before[1] if piped else None))
    return found

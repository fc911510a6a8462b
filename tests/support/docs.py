"""The docs as data: fenced code blocks of docs/*.md, their JSON examples, and the
comparison of a real answer's keys with a documented one's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@dataclasses.dataclass(frozen=True)
class Block:
    info: str
    body: str
    line: int

    def where(self, doc: str) -> str:
        return f"docs/{doc} line {self.line}"


def fenced_blocks(doc: str) -> list[Block]:
    """Every fenced code block of a doc, with its info string and first line number."""
    blocks: list[Block] = []
    lines = (DOCS / doc).read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            info, start, body = lines[i][3:].strip(), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"docs/{doc} line {start}: unclosed code block"
            blocks.append(Block(info, "\n".join(body), start))
        i += 1
    return blocks


def json_examples(doc: str, info: str) -> list[tuple[Block, dict[str, Any]]]:
    found = []
    for block in fenced_blocks(doc):
        if block.info == info:
            try:
                value = json.loads(block.body)
            except ValueError as exc:
                pytest.fail(f"{block.where(doc)}: not valid JSON: {exc}")
            assert isinstance(value, dict), f"{block.where(doc)}: not a JSON object"
            found.append((block, value))
    return found


def keys_match(real: Any, documented: Any) -> bool:
    """Same keys at the top level and in nested objects (lists: their first items)."""
    if isinstance(real, dict) and isinstance(documented, dict):
        return set(real) == set(documented) and all(
            keys_match(real[k], documented[k]) for k in real
        )
    if isinstance(real, list) and isinstance(documented, list) and real and documented:
        return keys_match(real[0], documented[0])
    return True


@dataclasses.dataclass(frozen=True)
class HttpExample:
    """The request of an ``http`` block of docs/api.md."""

    method: str
    path: str  # with the query string, as written
    headers: dict[str, str]
    body: str
    block: Block


def http_examples() -> list[HttpExample]:
    """Every request example of docs/api.md, in order."""
    examples = []
    for block in fenced_blocks("api.md"):
        if block.info != "http":
            continue
        head, _, body = block.body.partition("\n\n")
        first, *header_lines = head.splitlines()
        method, path = first.split(" ")
        headers = dict(line.split(": ", 1) for line in header_lines)
        examples.append(HttpExample(method, path, headers, body.strip(), block))
    return examples

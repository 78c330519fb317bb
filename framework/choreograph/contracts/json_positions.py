"""Where each value of a JSON document starts, by JSON pointer, so findings can cite line:col."""

from __future__ import annotations

import json
import re

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def value_positions(text: str) -> dict[str, tuple[int, int]]:
    """Map every JSON pointer in `text` ("" is the root) to its 1-based (line, column).

    Assumes `text` is valid JSON (callers parse it with json.loads first).
    """
    positions: dict[str, int] = {}

    def skip(i: int) -> int:
        m = _WS.match(text, i)
        return m.end() if m else i

    def value(i: int, pointer: str) -> int:
        i = skip(i)
        positions[pointer] = i
        ch = text[i]
        if ch == "{":
            i = skip(i + 1)
            if text[i] == "}":
                return i + 1
            while True:
                m = _STRING.match(text, i)
                assert m, f"expected a key at offset {i}"
                key = json.loads(m.group())
                i = skip(m.end())
                i = value(i + 1, f"{pointer}/{_escape(key)}")  # skip ':'
                i = skip(i)
                if text[i] == "}":
                    return i + 1
                i = skip(i + 1)  # skip ','
        if ch == "[":
            i = skip(i + 1)
            if text[i] == "]":
                return i + 1
            index = 0
            while True:
                i = skip(value(i, f"{pointer}/{index}"))
                index += 1
                if text[i] == "]":
                    return i + 1
                i += 1
        m = _STRING.match(text, i) or _SCALAR.match(text, i)
        assert m, f"unexpected character {ch!r} at offset {i}"
        return m.end()

    value(0, "")
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    out: dict[str, tuple[int, int]] = {}
    for pointer, offset in positions.items():
        line = _bisect(line_starts, offset)
        out[pointer] = (line + 1, offset - line_starts[line] + 1)
    return out


def _bisect(starts: list[int], offset: int) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    return lo


def locate(positions: dict[str, tuple[int, int]], pointer: str) -> tuple[int, int]:
    """Position of `pointer`, or of its nearest enclosing value that has one."""
    p = "" if pointer == "/" else pointer
    while p not in positions and p:
        p = p.rsplit("/", 1)[0]
    return positions.get(p, (1, 1))

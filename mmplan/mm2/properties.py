"""Java `.properties` files as `java.util.Properties.load` reads them, and a writer it reads back.

Reading: `#`/`!` comment lines, continuation lines (an odd number of trailing backslashes), keys ending
at the first unescaped `=`, `:` or whitespace, the escapes `\\t \\n \\r \\f \\uXXXX`, and any other
`\\c` read as `c` (Java drops the backslash: `.*\\.internal` in a file is the regex `.*.internal`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_UNESCAPES = {v: "\\" + k for k, v in _ESCAPES.items()}


@dataclass
class Properties:
    """Properties in file order (a repeated key keeps its last value, as in Java), with their lines."""

    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    comments: list[tuple[int, str]] = field(default_factory=list)  # (line, text after the marker)
    dropped_backslashes: dict[str, list[str]] = field(default_factory=dict)  # key -> chars whose `\` Java drops


def parse(text: str) -> Properties:
    """Read `.properties` text exactly as Java does."""
    props = Properties()
    natural = re.split(r"\r\n|\r|\n", text)
    i = 0
    while i < len(natural):
        start = i
        line = natural[i].lstrip(" \t\f")
        i += 1
        if not line:
            continue
        if line[0] in "#!":
            props.comments.append((start + 1, line[1:]))
            continue
        while _continues(line) and i < len(natural):
            line = line[:-1] + natural[i].lstrip(" \t\f")
            i += 1
        if _continues(line):
            line = line[:-1]
        key_raw, value_raw = _split(line)
        dropped: list[str] = []
        key = _unescape(key_raw, [])
        props.values.pop(key, None)  # a repeated key moves to its last position
        props.values[key] = _unescape(value_raw, dropped)
        props.lines[key] = start + 1
        if dropped:
            props.dropped_backslashes[key] = dropped
    return props


def _continues(line: str) -> bool:
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _split(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t\f":
            break
        i += 1
    key, rest = line[:i], line[i:]
    rest = rest.lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


def _unescape(text: str, dropped: list[str]) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 >= len(text):
            out.append(c)
            i += 1
            continue
        n = text[i + 1]
        if n == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
            out.append(chr(int(text[i + 2:i + 6], 16)))
            i += 6
            continue
        if n in _ESCAPES:
            out.append(_ESCAPES[n])
        else:
            out.append(n)
            if n not in "\\=:#! ":
                dropped.append(n)
        i += 2
    return "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le")  # joins surrogate pairs


def escape_key(key: str) -> str:
    return "".join("\\" + c if c in "=: #!\\" else _escape_char(c) for c in key)


def escape_value(value: str) -> str:
    """Backslashes, control characters and leading spaces escaped; `=` and `:` need nothing in a value."""
    out = "".join("\\\\" if c == "\\" else _escape_char(c) for c in value)
    stripped = out.lstrip(" ")
    return "\\ " * (len(out) - len(stripped)) + stripped


def _escape_char(c: str) -> str:
    if c in _UNESCAPES:
        return _UNESCAPES[c]
    if ord(c) < 0x20 or ord(c) > 0x7E:
        return "".join(f"\\u{ord(u):04x}" for u in _utf16(c))
    return c


def _utf16(c: str) -> list[str]:
    data = c.encode("utf-16-be")
    return [chr(int.from_bytes(data[j:j + 2], "big")) for j in range(0, len(data), 2)]


def line(key: str, value: str) -> str:
    """One `key = value` line that `parse` (and Java) reads back as (key, value)."""
    return f"{escape_key(key)} = {escape_value(value)}"

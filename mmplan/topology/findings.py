"""Findings: what `validate` and `plan` report about a topology, each with a stable code."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["error", "warning"]


class Finding(BaseModel):
    """One problem: a stable code, a severity, a message and the YAML location it concerns."""

    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None


def format_path(loc: tuple) -> str:
    """('flows', 0, 'topics') -> 'flows[0].topics'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def render_text(findings: list[Finding], file: str, summary: str) -> str:
    """One line per finding (`file:line: severity[code] path: message`), then a count."""
    lines = []
    for f in findings:
        where = f"{file}:{f.line}" if f.line else file
        at = f" {f.path}:" if f.path else ""
        lines.append(f"{where}: {f.severity}[{f.code}]{at} {f.message}")
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    if errors:
        lines.append(f"{file}: {count(errors, 'error')}, {count(warnings, 'warning')}")
    else:
        lines.append(f"{file}: valid ({summary})" + (f", {count(warnings, 'warning')}" if warnings else ""))
    return "\n".join(lines)


def render_json(findings: list[Finding], file: str) -> str:
    return json.dumps({"valid": not has_errors(findings), "file": file,
                       "findings": [f.model_dump() for f in findings]}, indent=2)


def render_github(findings: list[Finding], file: str) -> str:
    """GitHub workflow commands, so findings show as annotations on the pull request's diff."""
    lines = []
    for f in findings:
        props = [f"file={_escape_property(file)}"] + ([f"line={f.line}"] if f.line else [])
        props.append(f"title={_escape_property(f.code)}")
        lines.append(f"::{f.severity} {','.join(props)}::{_escape_data(f.message)}")
    return "\n".join(lines)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")

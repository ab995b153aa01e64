"""Reading a topology file: YAML with line numbers, then the models.

Problems come back as `parse` and `schema` findings with file and line, inside a
TopologyError, never as a traceback.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mmplan.errors import MmplanError
from mmplan.topology.findings import Finding, format_path
from mmplan.topology.models import Topology

DEFAULT_FILE = "mmplan.yaml"


class TopologyError(MmplanError):
    """A file that could not be read as a topology; carries `parse`/`schema` findings."""

    def __init__(self, file: str, findings: list[Finding]):
        self.file = file
        self.findings = findings
        first = findings[0]
        where = f"{file}:{first.line}" if first.line else file
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        super().__init__(f"{first.message}{more}", where=where, hint=_HINTS.get(first.code))

    def render(self) -> str:
        lines = []
        for f in self.findings[:_MAX_SHOWN]:
            where = f"{self.file}:{f.line}" if f.line else self.file
            at = f" ({f.path})" if f.path else ""
            lines.append(f"error[{f.code}]: {where}{at}: {f.message}")
        if len(self.findings) > _MAX_SHOWN:
            lines.append(f"... and {len(self.findings) - _MAX_SHOWN} more")
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


_MAX_SHOWN = 15
_HINTS = {
    "parse": "fix the YAML syntax at that line; `mmplan schema` prints the format",
    "schema": "see the topology reference in the README, or `mmplan schema` for the JSON Schema",
    "file": "pass the topology file as an argument, or create mmplan.yaml in this directory",
}


@dataclass(frozen=True)
class LoadedTopology:
    """A valid topology with the file it came from and the line of every key path."""

    topology: Topology
    file: str
    lines: dict[tuple, int] = field(default_factory=dict, compare=False)

    def line_of(self, loc: tuple) -> int | None:
        """The line of a key path, or of its nearest ancestor that has one."""
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def finding(self, code: str, severity: str, message: str, loc: tuple) -> Finding:
        return Finding(code=code, severity=severity, message=message, path=format_path(loc) or None,
                       line=self.line_of(loc))


def load_topology(path: str | Path) -> LoadedTopology:
    """Read and validate a topology file. Raises TopologyError with file and line."""
    file = str(path)
    p = Path(path)
    if not p.exists():
        raise TopologyError(file, [Finding(code="file", severity="error", message="no such file")])
    if p.is_dir():
        raise TopologyError(file, [Finding(code="file", severity="error",
                                           message="is a directory, not a topology file")])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TopologyError(file, [Finding(code="file", severity="error", message=f"cannot read: {e}")]) from None
    return parse_topology(text, file)


def parse_topology(text: str, file: str = "<string>") -> LoadedTopology:
    """Validate topology YAML text; `file` names it in errors."""
    data, lines = _yaml_with_lines(text, file)
    if data is None:
        raise TopologyError(file, [Finding(code="schema", severity="error", line=1,
                                           message="the file is empty: a topology starts with `version: 1`")])
    if not isinstance(data, dict):
        raise TopologyError(file, [Finding(code="schema", severity="error", line=1,
                                           message="a topology is a mapping with version, clusters and flows")])
    try:
        topology = Topology.model_validate(data)
    except ValidationError as e:
        loaded = LoadedTopology(topology=None, file=file, lines=lines)  # type: ignore[arg-type]
        raise TopologyError(file, [_schema_finding(err, loaded) for err in e.errors()]) from None
    return LoadedTopology(topology=topology, file=file, lines=lines)


def _yaml_with_lines(text: str, file: str) -> tuple[Any, dict[tuple, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise TopologyError(file, [Finding(code="parse", severity="error", message=f"not valid YAML: {problem}",
                                           line=mark.line + 1 if mark else None)]) from None
    lines: dict[tuple, int] = {}
    if node is None:
        return None, lines
    return _build(node, (), lines, file), lines


def _build(node: yaml.Node, loc: tuple, lines: dict[tuple, int], file: str) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, file)
            if isinstance(key, list | dict) or key is None:
                raise TopologyError(file, [_parse_at(key_node, "a mapping key must be a plain name")])
            key = key if isinstance(key, int) and not isinstance(key, bool) else str(key)
            if key in out:
                raise TopologyError(file, [_parse_at(key_node, f"duplicate key {key!r} (first on line "
                                                               f"{lines[loc + (key,)]})")])
            lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, loc + (key,), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(child, loc + (i,), lines, file) for i, child in enumerate(node.value)]
    return _scalar(node, file)


def _scalar(node: yaml.Node, file: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return [] if isinstance(node, yaml.SequenceNode) else {}
    try:
        return yaml.constructor.SafeConstructor().construct_object(node)
    except yaml.YAMLError as e:
        raise TopologyError(file, [_parse_at(node, f"bad value: {e}")]) from None


def _parse_at(node: yaml.Node, message: str) -> Finding:
    return Finding(code="parse", severity="error", message=message, line=node.start_mark.line + 1)


def _schema_finding(err: dict, loaded: LoadedTopology) -> Finding:
    loc = tuple(part for part in err["loc"] if not _is_union_tag(part))
    kind = err["type"]
    if kind == "extra_forbidden":
        name = loc[-1]
        message = f"unknown key {name!r}"
        close = difflib.get_close_matches(str(name), _fields_at(loc[:-1]), n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif kind == "missing":
        message = f"missing key {loc[-1]!r}"
    elif kind == "literal_error" and loc == ("version",):
        message = "unsupported version: this mmplan reads `version: 1`"
    else:
        message = err["msg"].removeprefix("Value error, ")
        if kind in ("string_type", "int_type", "bool_type", "list_type", "dict_type", "model_type"):
            message += f", got {_shown(err.get('input'))}"
    return loaded.finding("schema", "error", message, loc)


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part in ("function-before", "function-after"))


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value) if len(repr(value)) < 40 else type(value).__name__


def _fields_at(loc: tuple) -> list[str]:
    """The keys the model accepts at a YAML path, for "did you mean" hints."""
    annotation: Any = Topology
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return []
            annotation = info.annotation
        else:
            args = typing.get_args(annotation)
            annotation = args[-1] if args else None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Optional[X] -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation

"""The plan: typed changes and problems. No I/O, no printing.

`FORMAT_VERSION` is raised whenever a consumer's parser of the JSON document would have to change.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mmplan.state.snapshot import AclBinding

FORMAT_VERSION = 1


class Action(str, Enum):
    create = "create"
    update = "update"
    delete = "delete"


class ChangeKind(str, Enum):
    create_topic = "create_topic"
    add_partitions = "add_partitions"
    set_config = "set_config"
    unset_config = "unset_config"
    create_acl = "create_acl"
    delete_acl = "delete_acl"
    delete_topic = "delete_topic"
    create_connector = "create_connector"
    update_connector = "update_connector"
    delete_connector = "delete_connector"

    @property
    def action(self) -> Action:
        if self in (ChangeKind.create_topic, ChangeKind.create_acl, ChangeKind.create_connector):
            return Action.create
        if self in (ChangeKind.delete_topic, ChangeKind.delete_acl, ChangeKind.delete_connector):
            return Action.delete
        return Action.update


# The order apply runs changes in: a topic exists before its configs and ACLs change, and before the
# connectors that replicate into it start.
APPLY_ORDER = list(ChangeKind)


class Change(BaseModel):
    """One change to one resource on one cluster, with its value before and after."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    cluster: str = Field(description="a cluster alias, or the Kafka Connect URL for connector changes")
    topic: str = ""
    connector: str | None = Field(None, description="the connector, for connector changes")
    config: str | None = None
    acl: AclBinding | None = None
    before: Any = None
    after: Any = None
    flow: str | None = None
    reason: str | None = None
    held: bool = Field(False, description="a delete held back for lack of --allow-delete; not applied")

    @property
    def action(self) -> Action:
        return self.kind.action

    @property
    def resource(self) -> str:
        if self.connector is not None:
            return f"connector {self.connector}"
        if self.acl is not None:
            return f"acl {self.acl.describe()}"
        if self.config is not None:
            return f"topic {self.topic} config {self.config}"
        return f"topic {self.topic}"


class PlanProblem(BaseModel):
    """A finding shown with the plan: offline check results and live problems apply will not fix."""

    model_config = ConfigDict(frozen=True)

    code: str
    severity: str
    message: str
    flow: str | None = None
    cluster: str | None = None


class Plan(BaseModel):
    """Everything `apply` would do, and everything that stands in its way."""

    model_config = ConfigDict(frozen=True)

    format_version: int = FORMAT_VERSION
    topology_file: str | None = None
    flows: list[str] = Field(default_factory=list, description="the flows this plan covers")
    changes: list[Change] = Field(default_factory=list)
    problems: list[PlanProblem] = Field(default_factory=list)

    @property
    def pending(self) -> list[Change]:
        """The changes apply will make (held deletes excluded)."""
        return [c for c in self.changes if not c.held]

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def counts(self) -> dict[Action, int]:
        counts = {action: 0 for action in Action}
        for change in self.pending:
            counts[change.action] += 1
        return counts

    def exit_code(self) -> int:
        """0 no changes, 2 changes, 1 errors (terraform's -detailed-exitcode)."""
        if self.has_errors:
            return 1
        return 2 if self.pending else 0

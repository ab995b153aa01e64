"""A small client for the Kafka Connect REST API (standard library only).

Tries each worker URL in turn until one answers; basic auth when the flow's `connect` block has a user.
Errors name the URL and what to do, never a password.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from mmplan.errors import MmplanError
from mmplan.topology.models import SECRET_REF, Connect


@dataclass(frozen=True)
class ConnectorStatus:
    """One connector as the REST API reports it: its config, its state and its tasks' states."""

    name: str
    config: dict[str, str]
    state: str
    trace: str | None = None
    tasks: list[tuple[int, str, str | None]] = field(default_factory=list)  # (id, state, trace)


class ConnectClient:
    def __init__(self, urls: list[str], username: str | None = None, password: str | None = None,
                 timeout: float = 10.0):
        if not urls:
            raise MmplanError("no Kafka Connect URL", hint="set connect.urls on the flow or in defaults")
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self._auth = None
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"

    @classmethod
    def for_settings(cls, connect: Connect, timeout: float = 10.0,
                     env: Mapping[str, str] = os.environ) -> ConnectClient:
        password = connect.password
        ref = SECRET_REF.fullmatch(password or "")
        if ref:
            if ref.group(1) not in env:
                raise MmplanError(f"environment variable {ref.group(1)} is not set (connect.password)",
                                  where=f"Kafka Connect {connect.urls[0] if connect.urls else ''}",
                                  hint=f"export {ref.group(1)} before running mmplan")
            password = env[ref.group(1)]
        return cls(connect.urls, connect.username, password, timeout)

    def request(self, method: str, path: str, body: object = None) -> object:
        """JSON in, JSON out; the first URL that answers is used. Raises MmplanError naming the URL."""
        errors = []
        for url in self.urls:
            req = urllib.request.Request(url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
            if self._auth:
                req.add_header("Authorization", self._auth)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as response:
                    data = response.read()
                    return json.loads(data) if data else None
            except urllib.error.HTTPError as e:
                raise _http_error(e, url, method, path) from None
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                errors.append(f"{url}: {reason}")
        raise MmplanError(f"Kafka Connect is unreachable ({'; '.join(errors)})",
                          hint="check connect.urls and that a worker is running")

    def connectors(self) -> dict[str, ConnectorStatus]:
        """Every connector with its config and status, in one request."""
        data = self.request("GET", "/connectors?expand=info&expand=status") or {}
        out = {}
        for name, entry in data.items():  # type: ignore[union-attr]
            info, status = entry.get("info") or {}, entry.get("status") or {}
            connector = status.get("connector") or {}
            tasks = [(t.get("id"), t.get("state"), t.get("trace")) for t in status.get("tasks") or []]
            out[name] = ConnectorStatus(name=name, config=dict(info.get("config") or {}),
                                        state=connector.get("state", "UNKNOWN"), trace=connector.get("trace"),
                                        tasks=sorted(tasks, key=lambda t: t[0] or 0))
        return out

    def put_config(self, name: str, config: dict[str, str]) -> None:
        """Create the connector or replace its whole config; returns once the listing shows it (a new
        connector is left out of `connectors()` until the worker has its status), or after the timeout."""
        self.request("PUT", f"/connectors/{quote(name, safe='')}/config", config)
        self._settle(lambda listed: name in listed and all(listed[name].config.get(k) == v for k, v in config.items()))

    def delete(self, name: str) -> None:
        """Delete the connector; returns once the listing no longer shows it, or after the timeout."""
        self.request("DELETE", f"/connectors/{quote(name, safe='')}")
        self._settle(lambda listed: name not in listed)

    def _settle(self, visible: Callable[[dict[str, ConnectorStatus]], bool]) -> None:
        """Wait, up to the timeout, until a write shows in the listing, so a plan made right after an apply
        does not see the old state. A listing that fails is left to the next plan to report."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if visible(self.connectors()):
                    return
            except MmplanError:
                return
            time.sleep(0.2)


def _http_error(e: urllib.error.HTTPError, url: str, method: str, path: str) -> MmplanError:
    try:
        message = json.loads(e.read() or b"{}").get("message") or e.reason
    except (ValueError, AttributeError):
        message = e.reason
    if e.code in (401, 403):
        return MmplanError(f"Kafka Connect refused the credentials ({e.code} {e.reason})", where=url,
                           hint="check connect.username and connect.password")
    return MmplanError(f"{method} {path.split('?')[0]} failed: {e.code} {message}", where=url)

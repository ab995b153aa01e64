"""Pick loopback ports for the sandbox's listeners."""

from __future__ import annotations

import contextlib
import socket

from mmplan.errors import MmplanError
from mmplan.sandbox.state import HOST


class PortInUse(MmplanError):
    """A port the sandbox needs is taken."""


def _bind(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((HOST, port))
    except OSError:
        s.close()
        raise
    return s


def port_free(port: int) -> bool:
    """True when `port` can be bound on 127.0.0.1 right now."""
    try:
        _bind(port).close()
    except OSError:
        return False
    return True


def allocate(count: int, base_port: int | None = None) -> list[int]:
    """`count` distinct free ports: consecutive from `base_port` if given, else chosen by the OS."""
    if base_port is not None:
        ports = list(range(base_port, base_port + count))
        if ports[-1] > 65535:
            raise MmplanError(f"--base-port {base_port} leaves no room for {count} ports below 65536")
        check_free(ports)
        return ports
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(_bind(0)) for _ in range(count)]
        return [s.getsockname()[1] for s in socks]


def check_free(ports: list[int]) -> None:
    """Raise a user-facing error naming the first port that is already in use."""
    for p in ports:
        if not port_free(p):
            raise PortInUse(
                f"port {p} on {HOST} is already in use",
                hint=f"stop whatever listens there (`ss -ltnp | grep :{p}`) or choose another --base-port",
            )

"""Why a connection failed, in one line a user can act on.

kafka-python retries a failing bootstrap until its timeout and then only says "Unable to bootstrap"; the
real cause (refused connection, TLS alert, SASL failure) is logged by its IO thread. `FailureLog` keeps the
exceptions logged by one client's IO thread, and `connect_failure` turns them into an MmplanError.
"""

from __future__ import annotations

import logging
import re
import socket

import kafka.errors as Errors

from mmplan.errors import MmplanError

_RESULT = re.compile(r"^\[Error (\d+)\] \w+: ?(.*)$", re.DOTALL)
_ERROR_PREFIX = re.compile(r"^(\[Error \d+\] )?\w+Error: ")


class FailureLog(logging.Handler):
    """Collects the exceptions kafka-python logs from the IO thread of the client with this client_id."""

    def __init__(self, client_id: str):
        super().__init__(logging.DEBUG)
        self.thread_name = f"kafka-io-{client_id}"
        self.errors: list[BaseException] = []
        self.kafka_answered = False  # a connection got as far as the ApiVersions answer before it was lost
        self._logger = logging.getLogger("kafka")  # kafka-python logs these failures at WARNING and ERROR

    def __enter__(self) -> FailureLog:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName != self.thread_name:
            return
        args = record.args if isinstance(record.args, tuple) else ()
        self.errors.extend(a for a in args if isinstance(a, BaseException))
        if any(getattr(a, "broker_version_data", None) is not None for a in args):
            self.kafka_answered = True


def connect_failure(alias: str, config: dict, log: FailureLog, error: BaseException, timeout: float) -> MmplanError:
    """The MmplanError for a client that could not bootstrap: the most telling cause seen, with a hint."""
    where = f"cluster {alias}"
    servers = ", ".join(config["bootstrap_servers"])
    protocol = config.get("security_protocol", "PLAINTEXT")
    mechanism = config.get("sasl_mechanism")
    user = config.get("sasl_plain_username")
    causes = [*log.errors, error]
    texts = [str(c) for c in causes]

    def has(kind: type) -> bool:
        return any(isinstance(c, kind) for c in causes)

    def text(*needles: str) -> bool:
        return any(n in t for t in texts for n in needles)

    if has(Errors.SaslAuthenticationFailedError):
        return MmplanError(f"SASL authentication failed ({mechanism}, user {user!r})", where=where,
                           hint="check security.sasl_username, sasl_password and sasl_mechanism")
    if has(Errors.UnsupportedSaslMechanismError):
        return MmplanError(f"the broker does not enable SASL mechanism {mechanism}", where=where,
                           hint="set security.sasl_mechanism to one the listener enables (PLAIN, SCRAM-SHA-256/512)")
    if has(Errors.IllegalSaslStateError):
        return MmplanError(f"the listener at {servers} does not use SASL, but security.protocol is {protocol}",
                           where=where, hint="set security.protocol to what the listener speaks (PLAINTEXT or SSL)")
    if has(Errors.AuthorizationError):
        return MmplanError(f"not authorized: {_first(causes, Errors.AuthorizationError)}", where=where,
                           hint="grant the principal mmplan uses Describe on the cluster")
    if text("CERTIFICATE_VERIFY_FAILED"):
        return MmplanError(f"TLS handshake failed: the broker's certificate is not trusted "
                           f"({_ssl_reason(texts, 'CERTIFICATE_VERIFY_FAILED')})", where=where,
                           hint="set security.ssl_cafile to the CA that signed the broker certificates")
    if text("BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN"):
        return MmplanError("TLS handshake failed: the broker rejected the client certificate", where=where,
                           hint="set security.ssl_certfile/ssl_keyfile to a certificate the broker's CA trusts")
    if text("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF", "Handshake failed"):
        return MmplanError(f"TLS handshake failed with {servers} ({_ssl_reason(texts, 'SSL')}): "
                           f"the listener may not use TLS", where=where,
                           hint=f"check security.protocol ({protocol}) against the listener")
    if text("Connection refused", "ECONNREFUSED"):
        return MmplanError(f"cannot connect to {servers}: connection refused", where=where,
                           hint="check bootstrap_servers and that the brokers are running")
    if not _resolvable(config["bootstrap_servers"]):
        return MmplanError(f"cannot resolve the bootstrap servers {servers}", where=where,
                           hint="check the host names in bootstrap_servers")
    if text("socket disconnected", "Connection reset") and log.kafka_answered and mechanism:
        # Brokers close the connection on a failed SASL exchange; the error answer often loses that race.
        return MmplanError(f"SASL authentication failed ({mechanism}, user {user!r}): the broker closed the "
                           f"connection during authentication", where=where,
                           hint="check security.sasl_username, sasl_password and sasl_mechanism")
    if text("socket disconnected", "Connection reset") and log.kafka_answered:
        return MmplanError(f"the broker at {servers} requires authentication, but security.protocol is {protocol}",
                           where=where, hint="set security.protocol (SASL_PLAINTEXT or SASL_SSL) and sasl_* settings")
    if text("socket disconnected", "Connection reset"):
        return MmplanError(f"the broker at {servers} closed the connection (security.protocol is {protocol})",
                           where=where, hint="the listener probably expects another security protocol "
                                             "(TLS or SASL): check security.protocol")
    return MmplanError(f"no answer from {servers} within {timeout:g}s", where=where,
                       hint="check bootstrap_servers, the network path, or raise --timeout")


def request_failure(alias: str, what: str, error: BaseException) -> MmplanError:
    """The MmplanError for a request that failed as a whole after connecting."""
    where = f"cluster {alias}"
    if isinstance(error, Errors.AuthorizationError):
        return MmplanError(f"not authorized to {what}: {describe(error)}", where=where,
                           hint="`mmplan doctor` lists the permissions mmplan needs")
    if isinstance(error, Errors.KafkaTimeoutError | Errors.RequestTimedOutError):
        return MmplanError(f"timed out while trying to {what}", where=where, hint="raise --timeout")
    return MmplanError(f"could not {what}: {describe(error)}", where=where)


def describe(error: BaseException) -> str:
    """A Kafka error as one line: the broker's message and Kafka's error name."""
    if isinstance(error, Errors.AuthorizationError):
        return f"{error.description} ({error.message})"  # the broker's own text dumps its request object
    if isinstance(error, Errors.BrokerResponseError):
        detail = str(error.args[0]) if error.args and error.args[0] else error.description
        return f"{_ERROR_PREFIX.sub('', detail)} ({error.message})"
    return str(error) or type(error).__name__


def response_error(code: int, message: str | None) -> str | None:
    """None for success, else the error of one resource in a response."""
    if code == 0:
        return None
    return describe(Errors.for_code(code)(message or ""))


def result_error(text: str) -> str:
    """kafka-python's "[Error 40] InvalidConfigurationError: message" in the same form as response_error."""
    m = _RESULT.match(text)
    return response_error(int(m.group(1)), m.group(2)) or text if m else text


def _resolvable(servers: list[str]) -> bool:
    """Whether any bootstrap host name resolves."""
    for server in servers:
        try:
            socket.getaddrinfo(server.rpartition(":")[0].strip("[]"), None)
            return True
        except OSError:
            continue
    return False


def _first(causes: list[BaseException], kind: type) -> str:
    return describe(next(c for c in causes if isinstance(c, kind)))


def _ssl_reason(texts: list[str], needle: str) -> str:
    for t in texts:
        if needle in t:
            start = t.find("[SSL")
            return t[start:].split(" (_ssl")[0] if start >= 0 else t
    return "handshake failed"

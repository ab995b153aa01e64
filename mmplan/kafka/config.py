"""kafka-python client settings for a topology cluster, with `${VAR}` secrets resolved from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mmplan.errors import MmplanError
from mmplan.topology.models import SECRET_REF, Cluster

CLIENT_ID = "mmplan"


def client_config(alias: str, cluster: Cluster, timeout: float = 10.0,
                  env: Mapping[str, str] = os.environ) -> dict:
    """Keyword arguments for kafka-python clients of cluster `alias`.

    `timeout` (seconds) bounds bootstrapping and every request. A `${VAR}` value is read from `env`;
    an unset variable raises MmplanError naming the variable and the cluster. Other values are used as written.
    """
    ms = max(1, int(timeout * 1000))
    config: dict = {
        "bootstrap_servers": list(cluster.bootstrap_servers),
        "client_id": CLIENT_ID,
        "bootstrap_timeout_ms": ms,
        "request_timeout_ms": ms,
        "reconnect_backoff_max_ms": min(ms, 1000),
        "security_protocol": "PLAINTEXT",
    }
    sec = cluster.security
    if sec is None:
        return config
    config["security_protocol"] = sec.protocol
    if sec.protocol.startswith("SASL_"):
        config["sasl_mechanism"] = sec.sasl_mechanism or "PLAIN"
        config["sasl_plain_username"] = _resolve(alias, "sasl_username", sec.sasl_username, env)
        config["sasl_plain_password"] = _resolve(alias, "sasl_password", sec.sasl_password, env)
    if sec.protocol in ("SSL", "SASL_SSL"):
        config["ssl_check_hostname"] = sec.ssl_check_hostname
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password"):
            value = _resolve(alias, key, getattr(sec, key), env)
            if value is not None:
                config[key] = value
    return config


def _resolve(alias: str, key: str, value: str | None, env: Mapping[str, str]) -> str | None:
    if value is None:
        return None
    ref = SECRET_REF.match(value)
    if not ref:
        return value
    name = ref.group(1)
    if name not in env:
        raise MmplanError(f"environment variable {name} is not set (security.{key})",
                          where=f"cluster {alias}", hint=f"export {name} before running mmplan")
    return env[name]

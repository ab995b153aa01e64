"""client_config: kafka-python settings from a topology cluster, secrets from the environment."""

from __future__ import annotations

import pytest

from mmplan.errors import MmplanError
from mmplan.kafka.config import client_config
from mmplan.kafka.errors import describe, response_error, result_error
from mmplan.topology.models import Cluster


def _cluster(**security) -> Cluster:
    return Cluster.model_validate({"bootstrap_servers": "a:9092, b:9093", "security": security or None})


def test_plaintext_defaults_and_timeouts():
    config = client_config("east", _cluster(), timeout=2.5)
    assert config == {"bootstrap_servers": ["a:9092", "b:9093"], "client_id": "mmplan",
                      "bootstrap_timeout_ms": 2500, "request_timeout_ms": 2500,
                      "reconnect_backoff_max_ms": 1000, "security_protocol": "PLAINTEXT"}


def test_bootstrap_list_or_comma_string():
    as_list = Cluster.model_validate({"bootstrap_servers": ["a:9092", "b:9093"]})
    assert client_config("x", as_list)["bootstrap_servers"] == client_config("x", _cluster())["bootstrap_servers"]


def test_sasl_secret_resolved_from_env():
    cluster = _cluster(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", sasl_username="svc",
                       sasl_password="${KAFKA_PW}", ssl_cafile="/ca.pem", ssl_check_hostname=False)
    config = client_config("east", cluster, env={"KAFKA_PW": "s3cret"})
    assert config["security_protocol"] == "SASL_SSL"
    assert (config["sasl_mechanism"], config["sasl_plain_username"], config["sasl_plain_password"]) == (
        "SCRAM-SHA-256", "svc", "s3cret")
    assert config["ssl_cafile"] == "/ca.pem" and config["ssl_check_hostname"] is False
    assert "ssl_certfile" not in config


def test_literal_secret_used_as_written():
    cluster = _cluster(protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="lit$")
    assert client_config("east", cluster, env={})["sasl_plain_password"] == "lit$"


def test_sasl_mechanism_defaults_to_plain():
    cluster = _cluster(protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    assert client_config("east", cluster, env={})["sasl_mechanism"] == "PLAIN"


def test_unset_variable_names_variable_and_cluster_never_a_value():
    cluster = _cluster(protocol="SSL", ssl_certfile="/c.pem", ssl_keyfile="/k.pem", ssl_password="${KEY_PW}")
    with pytest.raises(MmplanError) as err:
        client_config("us-west", cluster, env={"OTHER": "hunter2"})
    text = err.value.render()
    assert "KEY_PW" in text and "us-west" in text and "hunter2" not in text


def test_ssl_settings_only_for_tls_protocols():
    cluster = _cluster(protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p", ssl_cafile="/ca.pem")
    assert "ssl_cafile" not in client_config("x", cluster, env={})
    tls = client_config("x", _cluster(protocol="SSL", ssl_cafile="/ca.pem"), env={})
    assert tls["security_protocol"] == "SSL" and tls["ssl_cafile"] == "/ca.pem" and "sasl_mechanism" not in tls


def test_error_texts():
    assert response_error(0, None) is None
    assert response_error(36, "Topic 'x' already exists.") == "Topic 'x' already exists. (TOPIC_ALREADY_EXISTS)"
    assert result_error("[Error 40] InvalidConfigurationError: Unknown topic config name: x") == (
        "Unknown topic config name: x (INVALID_CONFIG)")
    assert result_error("something else") == "something else"
    from kafka.errors import ClusterAuthorizationFailedError

    assert "Request(" not in describe(ClusterAuthorizationFailedError("Request Request(processor=0 ...)"))

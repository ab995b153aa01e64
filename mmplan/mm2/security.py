"""A cluster's `security:` block as Kafka Java client properties, and back.

Secrets: a `${VAR}` becomes `${env:VAR}` (Kafka's EnvVarConfigProvider); separate PEM certificate and
key files are passed through the DirectoryConfigProvider (`${dir:/etc/kafka:client.pem}`), as Java's
PEM keystore reads either one file holding both or the PEM text itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from mmplan.topology.models import SECRET_REF, Security

ENV_PROVIDER = ("config.providers.env.class", "org.apache.kafka.common.config.provider.EnvVarConfigProvider")
DIR_PROVIDER = ("config.providers.dir.class", "org.apache.kafka.common.config.provider.DirectoryConfigProvider")
LOGIN_MODULES = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
                 "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
                 "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule"}
ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
DIR_REF = re.compile(r"^\$\{dir:(.*):([^:/]+)\}$")
_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')
SECURITY_KEYS = ("security.protocol", "sasl.mechanism", "sasl.jaas.config", "ssl.truststore.type",
                 "ssl.truststore.location", "ssl.keystore.type", "ssl.keystore.location",
                 "ssl.keystore.certificate.chain", "ssl.keystore.key", "ssl.key.password",
                 "ssl.endpoint.identification.algorithm")


def env_reference(value: str) -> str:
    """`${VAR}` as Kafka's EnvVarConfigProvider reference `${env:VAR}`; anything else unchanged."""
    ref = SECRET_REF.fullmatch(value)
    return "${env:" + ref.group(1) + "}" if ref else value


def java_security(sec: Security | None, secret: Callable[[str], str] = env_reference) -> dict[str, str]:
    """Java client properties for `sec`; `secret` turns each password as written into the value to use."""
    if sec is None:
        return {}
    out = {"security.protocol": sec.protocol}
    if sec.protocol.startswith("SASL_"):
        mechanism = sec.sasl_mechanism or "PLAIN"
        out["sasl.mechanism"] = mechanism
        options = [f'{k}="{_jaas_quote(v)}"' for k, v in (("username", sec.sasl_username),
                                                           ("password", sec.sasl_password)) if v is not None]
        if sec.sasl_password is not None:
            options[-1] = f'password="{_jaas_quote(secret(sec.sasl_password))}"'
        out["sasl.jaas.config"] = f"{LOGIN_MODULES[mechanism]} required {' '.join(options)};"
    if sec.protocol in ("SSL", "SASL_SSL"):
        if sec.ssl_cafile:
            out.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": sec.ssl_cafile})
        if sec.ssl_certfile and (sec.ssl_keyfile in (None, sec.ssl_certfile)):
            out.update({"ssl.keystore.type": "PEM", "ssl.keystore.location": sec.ssl_certfile})
        elif sec.ssl_certfile and sec.ssl_keyfile:
            out.update({"ssl.keystore.type": "PEM", "ssl.keystore.certificate.chain": _dir_ref(sec.ssl_certfile),
                        "ssl.keystore.key": _dir_ref(sec.ssl_keyfile)})
        if sec.ssl_password is not None:
            out["ssl.key.password"] = secret(sec.ssl_password)
        if not sec.ssl_check_hostname:
            out["ssl.endpoint.identification.algorithm"] = ""
    return out


def _dir_ref(path: str) -> str:
    directory, name = os.path.split(path)
    return "${dir:" + (directory or ".") + ":" + name + "}"


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def uses_dir_provider(props: dict[str, str]) -> bool:
    return any(DIR_REF.fullmatch(v) for v in props.values())


def parse_security(props: dict[str, str], alias: str) -> tuple[dict, list[str]]:
    """The `security:` block (as data) for Java client `props`, and notes on what could not be expressed.

    A literal password becomes a `${VAR}` named after the alias; its note names the variable, never the value.
    """
    notes: list[str] = []
    sec: dict = {}
    stem = re.sub(r"[^A-Z0-9]", "_", alias.upper())

    def secret(value: str, what: str) -> str:
        ref = ENV_REF.fullmatch(value)
        if ref:
            return "${" + ref.group(1) + "}"
        variable = f"{stem}_{what}"
        notes.append(f"{alias}: the {what.lower().replace('_', ' ')} is written in the file; imported as "
                     f"${{{variable}}}: set {variable} to it")
        return "${" + variable + "}"

    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    if protocol != "PLAINTEXT":
        sec["protocol"] = protocol
    if "sasl.mechanism" in props:
        mechanism = props["sasl.mechanism"].upper()
        if mechanism in LOGIN_MODULES:
            sec["sasl_mechanism"] = mechanism
        else:
            notes.append(f"{alias}.sasl.mechanism={mechanism}: mmplan supports PLAIN and SCRAM only")
    if "sasl.jaas.config" in props:
        options = dict(_JAAS_OPTION.findall(props["sasl.jaas.config"]))
        if "username" in options:
            sec["sasl_username"] = _jaas_unquote(options["username"])
        if "password" in options:
            sec["sasl_password"] = secret(_jaas_unquote(options["password"]), "SASL_PASSWORD")
        if set(options) - {"username", "password"}:
            notes.append(f"{alias}.sasl.jaas.config: options {sorted(set(options) - {'username', 'password'})} "
                         "are not expressible")
    if props.get("ssl.truststore.location"):
        if props.get("ssl.truststore.type", "JKS").upper() == "PEM":
            sec["ssl_cafile"] = props["ssl.truststore.location"]
        else:
            notes.append(f"{alias}.ssl.truststore.location: a {props.get('ssl.truststore.type', 'JKS')} truststore; "
                         "mmplan reads PEM files: convert it and set security.ssl_cafile")
    keystore_type = props.get("ssl.keystore.type", "JKS").upper()
    if props.get("ssl.keystore.location"):
        if keystore_type == "PEM":
            sec["ssl_certfile"] = props["ssl.keystore.location"]
        else:
            notes.append(f"{alias}.ssl.keystore.location: a {keystore_type} keystore; mmplan reads PEM files: "
                         "convert it and set security.ssl_certfile and ssl_keyfile")
    for key, field in (("ssl.keystore.certificate.chain", "ssl_certfile"), ("ssl.keystore.key", "ssl_keyfile")):
        if key in props:
            ref = DIR_REF.fullmatch(props[key])
            if ref:
                sec[field] = os.path.join(ref.group(1), ref.group(2))
            else:
                notes.append(f"{alias}.{key}: inline PEM text is not expressible; put it in a file")
    if "ssl.key.password" in props:
        sec["ssl_password"] = secret(props["ssl.key.password"], "SSL_KEY_PASSWORD")
    for key in ("ssl.truststore.password", "ssl.keystore.password"):
        if key in props:
            notes.append(f"{alias}.{key}: mmplan reads PEM files, which have no store password")
    if props.get("ssl.endpoint.identification.algorithm", "https") == "":
        sec["ssl_check_hostname"] = False
    return sec, notes


def _jaas_unquote(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)

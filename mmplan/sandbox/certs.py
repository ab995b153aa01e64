"""Generate the TLS material of a `--security tls` sandbox with the `openssl` command.

A throw-away CA signs a broker certificate (SAN 127.0.0.1 and localhost) and a client certificate
(CN=mmplan, its key encrypted with the sandbox password). The broker reads PEM files directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from mmplan.errors import MmplanError
from mmplan.sandbox.state import SANDBOX_USER

_DAYS = "30"
_PASS_ENV = "MMPLAN_SANDBOX_KEY_PASSWORD"


def _openssl(args: list[str], cwd: Path, password: str) -> None:
    env = dict(os.environ, **{_PASS_ENV: password})
    proc = subprocess.run(["openssl", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise MmplanError(f"openssl {args[0]} failed: {proc.stderr.strip()[-500:]}", where=str(cwd))


def generate(tls_dir: Path, password: str) -> None:
    """Write ca.pem, broker.pem (key + chain), client.pem and client.key (encrypted) into `tls_dir`."""
    if not shutil.which("openssl"):
        raise MmplanError("`openssl` is not on PATH; --security tls needs it to make certificates",
                          hint="install openssl, or use --security plaintext|sasl")
    tls_dir.mkdir(parents=True, exist_ok=True)
    pw = f"env:{_PASS_ENV}"
    (tls_dir / "broker.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (tls_dir / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", _DAYS, "-subj", "/CN=mmplan-sandbox-ca",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
         "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "broker.crt", "-days", _DAYS, "-extfile", "broker.ext"],
        ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes-256-cbc",
         "-pass", pw, "-out", "client.key"],
        ["req", "-new", "-key", "client.key", "-passin", pw, "-subj", f"/CN={SANDBOX_USER}",
         "-out", "client.csr"],
        ["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "client.pem", "-days", _DAYS, "-extfile", "client.ext"],
    ]
    for step in steps:
        _openssl(step, tls_dir, password)
    chain = [(tls_dir / name).read_text() for name in ("broker.key", "broker.crt", "ca.pem")]
    (tls_dir / "broker.pem").write_text("".join(chain))
    for name in ("ca.key", "broker.key", "broker.pem", "client.key"):
        (tls_dir / name).chmod(0o600)

"""Resolve Apache Kafka's jars from Maven Central into a per-user cache and build the classpath.

This module is the one place the Kafka version is pinned.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

from mmplan.errors import MmplanError

KAFKA_VERSION = "4.1.1"
LOG4J2_VERSION = "2.24.3"
SLF4J_VERSION = "1.7.36"

_ARTIFACTS = [
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
    ("org.apache.kafka", "kafka-tools", KAFKA_VERSION),
    ("org.apache.kafka", "connect-runtime", KAFKA_VERSION),
    ("org.apache.kafka", "connect-mirror", KAFKA_VERSION),
    ("org.slf4j", "slf4j-api", SLF4J_VERSION),
    ("org.apache.logging.log4j", "log4j-api", LOG4J2_VERSION),
    ("org.apache.logging.log4j", "log4j-core", LOG4J2_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J2_VERSION),
]

_COMPLETE = ".complete"


def cache_root() -> Path:
    """The per-user cache: $MMPLAN_CACHE_DIR, else $XDG_CACHE_HOME/mmplan, else ~/.cache/mmplan."""
    if os.environ.get("MMPLAN_CACHE_DIR"):
        return Path(os.environ["MMPLAN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmplan"


def render_pom(version: str = KAFKA_VERSION) -> str:
    """The pom whose runtime dependencies are everything the broker, the tools and MirrorMaker 2 need."""
    deps = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in _ARTIFACTS
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>mmplan.sandbox</groupId><artifactId>kafka-runtime</artifactId>"
        f"<version>{version}</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{deps}\n  </dependencies>\n"
        "</project>\n"
    )


def lib_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the jars of `version` live once resolved."""
    return cache_root() / f"kafka-{version}" / "lib"


def is_resolved(version: str = KAFKA_VERSION) -> bool:
    """True when the jar cache for `version` is complete (no network needed)."""
    return (lib_dir(version) / _COMPLETE).exists()


def resolve(version: str = KAFKA_VERSION, *, quiet_timeout: float = 900) -> Path:
    """Make sure the jars are in the cache; run Maven only when they are not. Returns the lib dir."""
    lib = lib_dir(version)
    if (lib / _COMPLETE).exists():
        return lib
    home = lib.parent
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (lib / _COMPLETE).exists():
            return lib
        mvn = shutil.which("mvn")
        if not mvn:
            raise MmplanError(
                "Maven (mvn) is not on PATH; it is needed once to fetch Kafka's jars",
                hint="install Maven 3.6+ (e.g. `apt-get install maven`) and run again",
            )
        (home / "pom.xml").write_text(render_pom(version))
        staging = home / "lib.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [mvn, "-B", "-ntp", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
               f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=quiet_timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise MmplanError(f"Maven did not finish resolving Kafka {version} in {quiet_timeout:.0f}s",
                              hint="check the network or proxy to Maven Central") from e
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise MmplanError(
                f"Maven could not resolve Kafka {version} (exit {proc.returncode}); last lines:\n{tail}",
                where=str(home / "pom.xml"),
                hint="check network access to Maven Central (proxy settings go in ~/.m2/settings.xml)",
            )
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
        (lib / _COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
    return lib


def classpath(version: str = KAFKA_VERSION) -> str:
    """The Java classpath (a `lib/*` wildcard) for `version`, resolving the jars first if needed."""
    return str(resolve(version) / "*")

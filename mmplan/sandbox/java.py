"""Find a Java 17+ runtime and build the JVM command lines of the sandbox's processes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from mmplan.errors import MmplanError

MIN_JAVA = 17

# Sized for three one-broker clusters plus the test suite on 2 cores / 24 GB. Measured on such a
# machine (1 KB records, ProducerPerformance): C1 only (TieredStopAtLevel=1) started in 2.0-2.5 s
# instead of 3.3-4.7 s and produced 138-149k rec/s instead of 94-98k, with ~20 MB less RSS; C2's
# compiler threads compete with the broker for the two cores. G1 was slower than Serial at this heap.
BROKER_JVM_FLAGS = [
    "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
    "-XX:MaxMetaspaceSize=256m", "-Djava.awt.headless=true",
]
# Short-lived tools (storage format): start fast, throughput does not matter.
TOOL_JVM_FLAGS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]


def find_java() -> str:
    """The java executable: $JAVA_HOME/bin/java if set, else `java` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise MmplanError(
            f"no Java runtime found (JAVA_HOME unset and no `java` on PATH); Kafka needs Java {MIN_JAVA}+",
            hint="install a JDK 17 or newer (e.g. `apt-get install openjdk-17-jdk-headless`)",
        )
    return java


def parse_java_major(version_output: str) -> int | None:
    """The major version in `java -version` output (`1.8.0_x` is 8, `17.0.15` is 17), or None."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check_java() -> str:
    """Return the java executable after checking it is Java 17 or newer."""
    java = find_java()
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MmplanError(f"cannot run {java} -version: {e}") from e
    major = parse_java_major(out)
    if major is None or major < MIN_JAVA:
        found = out.strip().splitlines()[0] if out.strip() else "unknown version"
        raise MmplanError(
            f"Kafka needs Java {MIN_JAVA} or newer; {java} is: {found}",
            hint="install a JDK 17+ and put it first on PATH or set JAVA_HOME",
        )
    return java

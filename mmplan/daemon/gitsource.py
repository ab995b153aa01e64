"""A topology kept in git: the daemon's own clone, fetched on every reconcile with the system `git`.

`GitSource(repo, ref, path, workdir).sync()` fetches `ref` from `repo` (a local bare repository or any URL git
understands), checks it out in `workdir` and returns the topology file's path and the commit. Failures (git
missing, repository unreachable, unknown ref, file not in the commit) raise MmplanError naming the repository;
the daemon then keeps running its last good topology.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from mmplan.errors import MmplanError

GIT_TIMEOUT = 60.0


class GitSource:
    def __init__(self, repo: str, ref: str, path: str, workdir: Path) -> None:
        self.repo = repo
        self.ref = ref
        self.path = path
        self.workdir = Path(workdir)
        self.commit: str | None = None

    @property
    def where(self) -> str:
        return f"git {self.repo} {self.ref}:{self.path}"

    @property
    def file(self) -> Path:
        """Where the topology file is in the daemon's clone."""
        return self.workdir / self.path

    def sync(self) -> tuple[Path, str]:
        """Fetch and check out `ref`; (topology file, commit). Raises MmplanError."""
        if shutil.which("git") is None:
            raise MmplanError("git is not installed", where=self.where, hint="install git (e.g. apt install git)")
        if not (self.workdir / ".git").is_dir():
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet")
        self._git("fetch", "--quiet", "--depth", "1", "--no-tags", self.repo, self.ref)
        commit = self._git("rev-parse", "FETCH_HEAD").strip()
        self._git("checkout", "--quiet", "--force", "--detach", commit)
        if not self.file.is_file():
            raise MmplanError(f"{self.path} is not in commit {commit[:12]}", where=self.where,
                              hint="check --path (relative to the repository's root)")
        self.commit = commit
        return self.file, commit

    def _git(self, *args: str) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
        try:
            done = subprocess.run(["git", "-C", str(self.workdir), *args], capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT, env=env)
        except subprocess.TimeoutExpired:
            raise MmplanError(f"git {args[0]} did not finish within {GIT_TIMEOUT:g}s", where=self.where,
                              hint="check that the repository is reachable") from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            detail = lines[-1] if lines else f"exit code {done.returncode}"
            raise MmplanError(f"git {args[0]} failed: {detail}", where=self.where,
                              hint="check the repository URL, the ref and the credentials git uses")
        return done.stdout

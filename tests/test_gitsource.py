"""The daemon's git source, against real local repositories made with the system git."""

from __future__ import annotations

import subprocess

import pytest

from mmplan.daemon.gitsource import GitSource
from mmplan.errors import MmplanError


def git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def origin(tmp_path):
    """A bare repository and a working clone that pushes to it."""
    bare, work = tmp_path / "origin.git", tmp_path / "work"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "clone", "--quiet", str(bare), str(work)], check=True, capture_output=True)
    git(work, "config", "user.email", "t@example.com")
    git(work, "config", "user.name", "t")
    git(work, "checkout", "--quiet", "-b", "main")
    return bare, work


def commit(work, path: str, text: str) -> str:
    target = work / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(work, "add", path)
    git(work, "commit", "--quiet", "-m", f"set {path}")
    git(work, "push", "--quiet", "origin", "main")
    return git(work, "rev-parse", "HEAD").strip()


def test_sync_follows_the_branch(origin, tmp_path):
    bare, work = origin
    first = commit(work, "topo/mmplan.yaml", "version: 1\n")
    source = GitSource(str(bare), "main", "topo/mmplan.yaml", tmp_path / "clone")
    file, sha = source.sync()
    assert sha == first and file.read_text() == "version: 1\n"
    second = commit(work, "topo/mmplan.yaml", "version: 1\n# changed\n")
    file, sha = source.sync()
    assert sha == second == source.commit and file.read_text().endswith("# changed\n")


def test_failures_name_the_repository(origin, tmp_path):
    bare, work = origin
    commit(work, "mmplan.yaml", "version: 1\n")
    with pytest.raises(MmplanError) as e:
        GitSource(str(bare), "no-such-branch", "mmplan.yaml", tmp_path / "c1").sync()
    assert "git fetch failed" in e.value.message and str(bare) in e.value.where
    with pytest.raises(MmplanError) as e:
        GitSource(str(bare), "main", "missing.yaml", tmp_path / "c2").sync()
    assert "missing.yaml is not in commit" in e.value.message
    with pytest.raises(MmplanError) as e:
        GitSource(str(tmp_path / "nowhere.git"), "main", "mmplan.yaml", tmp_path / "c3").sync()
    assert "git fetch failed" in e.value.message

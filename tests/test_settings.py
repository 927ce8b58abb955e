"""core.settings: every environment variable read in one place, parsed at call time, listed in the README."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from core import settings as config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch):
    for name, _ in config.variables():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_when_nothing_is_set(clean_env):
    s = config.settings()
    assert s.model is None and s.data is None and s.masks is None and s.db_url is None
    assert s.runs == REPO / "runs" and s.state_dir == REPO / "state"
    assert s.launcher_open is False and s.quick is False and s.verbose is False
    assert s.data_roots == () and s.weights_roots == () and s.test_kill_at is None


def test_values_are_parsed_and_read_at_call_time(clean_env, tmp_path):
    clean_env.setenv("BRAINSCAN_DATA", str(tmp_path / "data"))
    clean_env.setenv("BRAINSCAN_MODEL", "~/m")
    clean_env.setenv("BRAINSCAN_DATA_ROOTS", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    clean_env.setenv("BRAINSCAN_QUICK", "1")
    clean_env.setenv("BRAINSCAN_LAUNCHER_OPEN", "yes")
    clean_env.setenv("BRAINSCAN_VERBOSE", "0")
    clean_env.setenv("BRAINSCAN_STATE_DIR", "")
    s = config.settings()
    assert s.data == tmp_path / "data" and s.model == Path("~/m").expanduser()
    assert s.data_roots == (tmp_path / "a", tmp_path / "b")
    assert s.quick and s.launcher_open and not s.verbose
    assert s.state_dir == REPO / "state"  # empty counts as unset
    clean_env.delenv("BRAINSCAN_QUICK")
    assert config.settings().quick is False


def test_settings_are_frozen(clean_env):
    with pytest.raises(AttributeError):
        config.settings().quick = True  # type: ignore[misc]


def test_every_variable_is_in_the_readme_table():
    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^\| `(BRAINSCAN_[A-Z_]+)` \|", readme, re.MULTILINE))
    missing = [name for name, _ in config.variables() if name not in listed]
    assert not missing, f"README's configuration table lacks {missing}"


READ = re.compile(r"os\.(?:environ\.get|getenv)\(\s*([^,)]+)|os\.environ\[([^\]]+)\]")
PROCESS_VARIABLES = {'"PYTHONPATH"'}  # handed on to child processes, not a setting of ours


def test_no_module_reads_the_environment_outside_settings():
    readers = []
    paths = [REPO / "app.py"] + [p for folder in ("core", "ui", "pages", "train") for p in (REPO / folder).rglob("*.py")]
    for path in paths:
        for match in READ.finditer(path.read_text()):
            name = (match.group(1) or match.group(2)).strip()
            if path.name != "settings.py" and name not in PROCESS_VARIABLES:
                readers.append(f"{path.relative_to(REPO)}: {name}")
    assert not readers, f"read the environment through core.settings: {readers}"

"""Environment variables are read in one module (kronos_assets/base/environment.py); secrets never show in reprs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kronos_assets
from kronos_assets.base import environment
from kronos_assets.publishing.r2 import R2ConfigError, r2_config_from_env

ROOT = Path(kronos_assets.__file__).parent


def test_no_module_but_environment_reads_the_environment() -> None:
    readers = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "base/environment.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"os\.environ|getenv\(", line):
                readers.append(f"{rel}:{n}")
    assert readers == []


def test_secrets_never_show_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(environment.R2_SECRET, "s3cr3t-value")
    monkeypatch.setenv(environment.R2_KEY_ID, "key-id-value")
    monkeypatch.setenv(environment.WEBHOOK, "https://hooks.example/T0/abc")
    shown = repr(environment.r2_variables()) + repr(environment.webhook_url())
    assert "s3cr3t" not in shown and "key-id-value" not in shown and "abc" not in shown
    assert environment.webhook_url() == "https://hooks.example/T0/abc"  # the value itself, for the code using it
    with pytest.raises(R2ConfigError) as err:  # bucket missing: the message names variables, not values
        r2_config_from_env()
    assert "R2_BUCKET" in str(err.value) and "s3cr3t" not in str(err.value)


def test_values_are_read_when_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(environment.HOME, raising=False)
    assert environment.home() == (environment.REPO_ROOT / ".kronos_home").resolve()
    monkeypatch.setenv(environment.HOME, str(tmp_path))
    assert environment.home() == tmp_path.resolve()
    monkeypatch.setenv(environment.HOME, "  ")  # blank is unset, not the current folder
    assert environment.home() == (environment.REPO_ROOT / ".kronos_home").resolve()


@pytest.mark.parametrize("raw", ["soon", "0", "-5", "nan"])
def test_a_bad_pool_wait_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(environment.POOL_WAIT, raw)
    with pytest.raises(ValueError, match=rf"^KRONOS_POOL_WAIT_S: '{raw}' is not a number of seconds > 0$"):
        environment.pool_wait_s()


def test_environment_imports_no_dagster_and_nothing_of_the_package() -> None:
    text = (ROOT / "base" / "environment.py").read_text()
    assert not re.search(r"^\s*(import|from) (dagster|kronos_assets)", text, re.M)

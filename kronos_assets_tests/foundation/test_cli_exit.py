"""The console scripts' exit (cli.script_exit): main's status, and every object alive at the end frozen, so that the
interpreter's last collections do not free them one by one."""

import gc
import importlib
import tomllib
from pathlib import Path

import pytest

SCRIPTS = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_console_script_exits_with_main_s_status_and_skips_the_teardown(script, monkeypatch):
    module_name, function = SCRIPTS[script].split(":")
    module = importlib.import_module(module_name)
    assert function == "cli", f"{script} runs {SCRIPTS[script]}, which pays the teardown"
    monkeypatch.setattr(module, "main", lambda: 3)
    try:
        with pytest.raises(SystemExit) as exited:
            getattr(module, function)()
        assert exited.value.code == 3
        assert gc.get_freeze_count() > 10_000  # the modules, classes and functions loaded so far
    finally:
        gc.unfreeze()  # this test process goes on collecting as before

"""The ``kronos-assets`` console script's exit: main's status, and every object alive at the end frozen, so that the
interpreter's last collections do not free them one by one (cli.main.cli)."""

import gc

import pytest

from kronos_assets.cli import main as cli_main


def test_the_console_script_exits_with_main_s_status_and_skips_the_teardown(monkeypatch):
    monkeypatch.setattr(cli_main, "main", lambda: 3)
    try:
        with pytest.raises(SystemExit) as exited:
            cli_main.cli()
        assert exited.value.code == 3
        assert gc.get_freeze_count() > 10_000  # the modules, classes and functions loaded so far
    finally:
        gc.unfreeze()  # this test process goes on collecting as before

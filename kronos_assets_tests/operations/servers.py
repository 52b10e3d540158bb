"""Servers the operations tests start on 127.0.0.1 and always stop: the machine's PostgreSQL, Dagster processes."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

PG_BIN_DIRS = [
    os.environ.get("KRONOS_PG_BIN", ""),
    "/usr/lib/postgresql/15/bin",
    *sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True),
]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl ($KRONOS_PG_BIN, Debian's /usr/lib/postgresql/<v>/bin, or PATH)."""
    for d in PG_BIN_DIRS:
        if d and (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db: str

    def env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db,
        }


def _as_postgres_user() -> tuple[list[str], int | None, int | None]:
    """PostgreSQL refuses to run as root: then run its binaries as the 'postgres' system user."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    if runuser is None:
        pytest.skip("running as root and neither runuser nor setpriv is available to drop to 'postgres'")
    prefix = (
        [runuser, "-u", "postgres", "--"]
        if runuser.endswith("runuser")
        else [runuser, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    )
    return prefix, pw.pw_uid, pw.pw_gid


@contextmanager
def postgres_server(db: str = "dagster", timeout_s: float = 30.0) -> Iterator[Postgres]:
    """initdb into a temporary folder, pg_ctl start on a free 127.0.0.1 port, create ``db``; always stopped."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql or set KRONOS_PG_BIN")
    prefix, uid, gid = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="kronos-pg-"))  # not under pytest's 0700 root: 'postgres' must reach it
    data, log = root / "data", root / "server.log"
    if uid is not None:
        os.chown(root, uid, gid)
    user, password, port = "kronos", "kronos-test", free_port()
    pwfile = root / "pw"
    pwfile.write_text(password)
    if uid is not None:
        os.chown(pwfile, uid, gid)
    started = False
    try:
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                user,
                "--pwfile",
                str(pwfile),
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
        proc = subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                opts,
                "-w",
                "-t",
                str(int(timeout_s)),
                "start",
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s + 10,
        )
        started = True
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr}\n{log.read_text() if log.exists() else ''}")
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db}"')
        con.close()
        yield Postgres("127.0.0.1", port, user, password, db)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def background(args: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen]:
    """A long-running process (daemon, webserver) in its own process group, output to ``log``; always stopped,
    with its children (code servers, run workers)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group (orphaned run workers, code servers)
    except ProcessLookupError:
        pass
    proc.wait(5)


def graphql(port: int, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One query to the webserver on ``port``; GraphQL errors fail the test with their text."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.loads(resp.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def wait_until(
    predicate,
    timeout_s: float,
    what: str,
    interval_s: float = 0.5,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"{what}: process exited with {proc.returncode}\n{tail}")
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"{what}: not after {timeout_s:.0f} s\n{tail}")
        time.sleep(interval_s)


def kronos_env(root: Path, dagster_home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of Dagster processes serving a small configuration: config, home and profile, a
    DAGSTER_HOME, the venv's binaries first on PATH, and nothing of the caller's KRONOS_*/R2_*/DAGSTER_* setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRONOS_", "R2_", "DAGSTER_"))}
    env.update(
        {
            "KRONOS_CONFIG_DIR": str(root / "configs"),
            "KRONOS_HOME": str(root / "home"),
            "KRONOS_PROFILE": "demo",
            "DAGSTER_HOME": str(dagster_home),
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env

"""DuckLake attached in this process: an in-memory DuckDB with the lake as its default catalog.

Credentials go from the environment into DuckDB secrets (in memory, this process only); they are never part of a
connection string, a repr, a log line or an error we raise.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import duckdb

from kronos_assets.base import environment
from kronos_assets.warehouse import extensions
from kronos_assets.warehouse.config import PG_PASSWORD_VAR, S3_KEY_ID_VAR, S3_SECRET_VAR, WarehouseConfig

ALIAS = "lake"
ATTACH_WAIT_S = 60.0  # first attaches of a new catalog race to create its tables: retried this long


class WarehouseUnavailable(RuntimeError):
    pass


def is_conflict(exc: BaseException) -> bool:
    """DuckLake's commit-race errors (another writer committed first): the whole transaction may be retried."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.TransactionException) and "conflict" in text


def _cause(exc: BaseException) -> str:
    """The useful end of an attach error: PostgreSQL's own reason when there is one (DuckDB wraps it twice)."""
    text = " ".join(str(exc).split())
    if "FATAL:" in text:
        return text[text.rindex("FATAL:") :][:300]
    return text[-300:] or type(exc).__name__


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _env(name: str, what: str) -> str:
    value = environment.lake_secret(name)
    if not value:
        raise WarehouseUnavailable(f"${name} is not set: the {what} of the DuckLake warehouse comes from it")
    return value


class Lake:
    def __init__(self, config: WarehouseConfig, extension_dir: Path, read_only: bool = False):
        self.config = config
        self.extension_dir = extension_dir
        self.read_only = read_only  # never creates or changes the catalog (health)
        self._db: duckdb.DuckDBPyConnection | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # a connection never travels: the unpickled copy attaches on first use
        return {"config": self.config, "extension_dir": self.extension_dir, "read_only": self.read_only}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._db is None or self._pid != os.getpid():  # a forked child attaches its own
                self._db = self._attach()
                self._pid = os.getpid()
            con = self._db.cursor()
        con.execute(f"USE {ALIAS}")
        con.execute("SET enable_progress_bar = false")  # a slow catalog round trip would draw one into run logs
        return con

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None

    def _attach(self) -> duckdb.DuckDBPyConnection:
        cfg, cat = self.config, self.config.catalog
        assert cat is not None and cfg.data_path
        db = duckdb.connect(":memory:", config=extensions.connection_config(self.extension_dir))
        try:
            db.execute("SET enable_progress_bar = false")
            names = ("ducklake", "postgres") + (("httpfs",) if cfg.on_s3 else ())
            extensions.load(db, names, self.extension_dir)
            db.execute(
                f"CREATE SECRET (TYPE postgres, HOST {_q(cat.host)}, PORT {cat.port}, "
                f"DATABASE {_q(cat.dbname)}, USER {_q(cat.user)}, "
                f"PASSWORD {_q(_env(PG_PASSWORD_VAR, 'catalog password'))})"
            )
            if cfg.on_s3:
                s3 = cfg.s3
                assert s3 is not None
                db.execute(
                    f"CREATE SECRET kronos_lake_s3 (TYPE s3, KEY_ID {_q(_env(S3_KEY_ID_VAR, 'bucket key id'))}, "
                    f"SECRET {_q(_env(S3_SECRET_VAR, 'bucket secret'))}, ENDPOINT {_q(s3.endpoint)}, "
                    f"REGION {_q(s3.region)}, URL_STYLE {_q(s3.url_style)}, USE_SSL {str(s3.use_ssl).lower()}, "
                    f"SCOPE {_q(cfg.data_path)})"
                )
            elif "://" not in cfg.data_path and not self.read_only:
                Path(cfg.data_path).mkdir(parents=True, exist_ok=True)
            target = f"ducklake:postgres:connect_timeout={cat.connect_timeout_s}"
            # The catalog's host, database, user and password come from the default postgres secret above.
            options = f"DATA_PATH {_q(cfg.data_path)}" + (", READ_ONLY" if self.read_only else "")
            self._attach_retrying(db, f"ATTACH {_q(target)} AS {ALIAS} ({options})")
        except BaseException:
            db.close()
            raise
        return db

    def _attach_retrying(self, db: duckdb.DuckDBPyConnection, sql: str) -> None:
        """Several runs attaching a new catalog at once race to create its tables: the losers attach again."""
        deadline = time.monotonic() + ATTACH_WAIT_S
        while True:
            try:
                db.execute(sql)
                return
            except duckdb.Error as exc:
                text = str(exc).lower()
                racing = "already exists" in text or "duplicate key" in text or is_conflict(exc)
                if not racing or time.monotonic() > deadline:
                    raise WarehouseUnavailable(f"cannot attach {self.config.describe()}: {_cause(exc)}") from exc
                time.sleep(0.1 + random.random() * 0.4)

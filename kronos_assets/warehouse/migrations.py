"""Schema versions: the warehouse records which version of the tables it holds and migrates itself forward.

``MIGRATIONS`` is the ordered list of versions this release knows. A warehouse created now gets ``schema.sql``
(always the newest tables) and one ``schema_migrations`` row for the newest version. A warehouse written by an
older release is brought forward one migration at a time, each in its own transaction together with its row in
``schema_migrations`` (version, name, applied time): a kill -9 anywhere leaves the last committed version, whole,
and the next open applies what is still pending. Warehouses from before versions were recorded (releases up to
58da6cc) are recognised by their tables' shape. A recorded version above the newest known means a newer release
wrote the file: this one refuses, naming the file and both versions, and changes nothing.

To change the tables: edit ``schema.sql`` (what a new warehouse gets) and append a ``Migration`` with the next
version whose ``apply`` turns the previous version's tables into exactly those (usually a file in
``dbt_free_sql/migrations/``); kronos_assets_tests/warehouse/test_migrations.py checks that a migrated
warehouse has the same columns as a new one. A metric registered with ``since`` the next version
(``metrics.registry``) brings its own migration: its evaluations column, filled for the stored forecasts
(``metric_columns``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import duckdb

from kronos_assets.metrics.registry import added_since, column_versions
from kronos_assets.warehouse import metric_columns, score_sums
from kronos_assets.warehouse.sql import read_sql

META = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Any], None] | None  # runs inside the migration's transaction; None: a baseline, never applied


def _sql_file(name: str) -> Callable[[Any], None]:
    def apply(con: Any) -> None:
        con.execute(read_sql(f"migrations/{name}"))

    return apply


def _create_meta(con: Any) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META} (version INTEGER NOT NULL, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMPTZ NOT NULL)"
    )


TABLE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "first tables (release dbaa304)", None),
    Migration(2, "forecast_steps volume summaries nullable (release 58da6cc)", _sql_file("0002_nullable_volume.sql")),
    Migration(3, "schema_migrations: the warehouse records its schema version", _create_meta),
    Migration(
        5,
        "forecast_paths: open, high, low, volume and amount as FLOAT (close stays DOUBLE)",
        _sql_file("0005_float_path_fields.sql"),
    ),
    Migration(
        6,
        "score_sums, score_months and score_bins: the track record's running aggregates, from the stored scores",
        score_sums.rebuilder(6),
    ),
    Migration(
        score_sums.FINAL_SINCE,
        "final_scores: each scored forecast's last step and its 80 % band hits pooled "
        "over its path, for the per-series track record and the coverage test",
        score_sums.rebuild_finals,
    ),
)


def _with_sums(version: int, apply: Callable[[Any], None]) -> Callable[[Any], None]:
    """A metric's migration, then the running aggregates made again with its columns (where they exist yet)."""

    def run(con: Any) -> None:
        apply(con)
        if score_sums.SUMS in _tables(con):
            score_sums.rebuilder(version)(con)

    return run


def known() -> tuple[Migration, ...]:
    """The table migrations and one per schema version that added registered metrics, in version order."""
    steps = [
        *TABLE_MIGRATIONS,
        *(
            Migration(
                v,
                "evaluations: " + ", ".join(m.name for m in added_since(v)) + " (metric registry), scored for "
                "the stored forecasts",
                _with_sums(v, metric_columns.migration(v)),
            )
            for v in column_versions()
            if v > metric_columns.FIRST_TABLES
        ),
    ]
    steps.sort(key=lambda m: m.version)
    if [m.version for m in steps] != list(range(1, len(steps) + 1)):  # two changes took the same number
        raise RuntimeError(
            "schema migrations must be numbered 1, 2, 3, ... without gaps or repeats, got "
            f"{[m.version for m in steps]} (kronos_assets/warehouse/migrations.py, metrics/registry.py)"
        )
    return tuple(steps)


MIGRATIONS: tuple[Migration, ...] = known()
NEWEST = MIGRATIONS[-1].version
_migrating = threading.Lock()  # threads of one process sharing a file migrate one at a time


class SchemaTooNew(RuntimeError):
    """The warehouse was written by a newer release: this one must not write it."""

    def __init__(self, where: str, found: int):
        self.where, self.found = where, found
        super().__init__(
            f"warehouse {where} has schema version {found}, newer than this release knows ({NEWEST}): "
            "run the release that wrote it, or upgrade kronos_assets; nothing was changed"
        )


class MigrationFailed(RuntimeError):
    """A migration raised: its transaction was rolled back, the warehouse stays at the version before it."""


@dataclass(frozen=True)
class SchemaState:
    version: int | None  # None: no tables yet
    recorded: bool  # False: from before versions were recorded (shape-detected) or empty

    @property
    def pending(self) -> list[Migration]:
        return [m for m in MIGRATIONS if self.version is not None and m.version > self.version]


def _tables(con: Any) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
        ).fetchall()
    }


def state(con: Any) -> SchemaState:
    """The warehouse's schema version as recorded, or as its shape says for files from before versions."""
    tables = _tables(con)
    if META in tables:
        found = con.execute(f"SELECT max(version) FROM {META}").fetchone()[0]
        if found is not None:
            return SchemaState(int(found), True)
    if "forecast_steps" not in tables:
        return SchemaState(None, False)
    row = con.execute(
        "SELECT is_nullable FROM information_schema.columns WHERE table_catalog = current_database()"
        " AND table_name = 'forecast_steps' AND column_name = 'mean_volume'"
    ).fetchone()
    return SchemaState(1 if row and row[0] == "NO" else 2, False)


def describe(s: SchemaState) -> str:
    """Health's words for a state: the version and what the next run applies."""
    if s.version is None:
        return f"no tables yet: the first run creates version {NEWEST}"
    if s.version > NEWEST:
        return f"version {s.version}, newer than this release knows ({NEWEST}): this release will not write it"
    recorded = "" if s.recorded else " (from before versions were recorded)"
    if not s.pending:
        return f"version {s.version}{recorded}, the newest"
    names = "; ".join(f"{m.version} {m.name}" for m in s.pending)
    return f"version {s.version}{recorded}; pending, applied by the next run: {names}"


def ensure_current(
    con: Any, where: str | Path, transaction: Callable[[Any], Any], retrying: Callable[[str, Callable[[], None]], None]
) -> int | None:
    """Brings the warehouse on ``con`` to NEWEST (or creates it there); returns the version found before (None:
    it had no tables).

    ``transaction(con)`` is the warehouse's all-or-nothing context; ``retrying`` re-runs a transaction that lost a
    commit race (DuckLake), and every step re-reads the version inside its transaction, so a second process
    migrating at the same time finds the work done and does nothing."""
    with _migrating:
        before = state(con)
        if before.version is not None and before.version > NEWEST:
            raise SchemaTooNew(str(where), before.version)

        def create() -> None:
            with transaction(con):
                if state(con).version is None:
                    con.execute(read_sql("schema.sql"))
                    metric_columns.create_added(con)
                    score_sums.create(con)
                    _create_meta(con)
                    _record(con, NEWEST, "created at this version")

        if before.version is None:
            retrying("creating the warehouse tables", create)
            return None
        for m in before.pending:
            retrying(
                f"migrating the warehouse to schema version {m.version}", lambda m=m: _step(con, where, m, transaction)
            )
        return before.version


def _step(con: Any, where: str | Path, m: Migration, transaction: Callable[[Any], Any]) -> None:
    with transaction(con):
        now = state(con)
        if now.version is not None and now.version >= m.version:  # another process did it meanwhile
            return
        _create_meta(con)
        if not now.recorded and now.version is not None:  # remember where an unversioned file started
            _record(con, now.version, f"found: {MIGRATIONS[now.version - 1].name}")
        assert m.apply is not None
        try:
            m.apply(con)
        except duckdb.Error as exc:
            if "conflict" in str(exc).lower():  # a commit race: the caller retries the whole step
                raise
            raise MigrationFailed(
                f"warehouse {where}: migration to schema version {m.version} ({m.name}) failed "
                f"and was rolled back, the warehouse is still at version {now.version}: "
                f"{' '.join(str(exc).split())[:200]}"
            ) from exc
        _record(con, m.version, m.name)


def _record(con: Any, version: int, name: str) -> None:
    con.execute(f"INSERT INTO {META} VALUES (?, ?, now())", [version, name])

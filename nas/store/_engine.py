"""The store's database: engine, URL, schema migration, read-only checks and retried transactions.

Writers open it with a URL: the schema is created or migrated (Alembic) under a lock.
Readers (the dashboard, ``nas results``) open it read-only: nothing is created, the database
must already be a nas store, and the connection itself is read-only (SQLite ``mode=ro``;
PostgreSQL ``default_transaction_read_only``). Transient failures (a database restarting, a
locked SQLite file) are retried with backoff; when the database stays unreachable the error
is one line, and no partial row is left behind because every write is a single transaction.
The queries are :class:`nas.store.Store`'s.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from nas.errors import NasError, first_line

T = TypeVar("T")
DEFAULT_URL = "sqlite:///nas.db"
VERSION_TABLE = "nas_alembic_version"


def resolve_url(db: str | None = None) -> str:
    """``--db`` or ``$NAS_DB_URL`` or ``./nas.db``; a plain path means a SQLite file."""
    url = db or os.environ.get("NAS_DB_URL") or DEFAULT_URL
    if "://" not in url:  # a plain path: any character may be in it ('#', '%', '?'), none is URL syntax
        if "\x00" in url:
            raise NasError("a store path cannot hold a NUL character")
        return URL.create("sqlite", database=url).render_as_string(hide_password=False)
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a malformed port only fails when read
    except (ArgumentError, ValueError):
        raise NasError(f"{_redact(url)!r} is not a database URL (use sqlite:///PATH or postgresql://USER@HOST/DB)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if not (parsed.drivername.startswith("sqlite") or parsed.drivername.startswith("postgresql")):
        raise NasError(f"unsupported database {parsed.drivername!r} (supported: sqlite, postgresql)")
    return parsed.render_as_string(hide_password=False)


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


class Database:
    """A nas database at ``url`` (see :func:`resolve_url`), migrated, or checked when read-only."""

    retries = 6  # transient failures are retried with exponential backoff: about 13 s in all
    backoff_s = 0.25
    sqlite_busy_ms = 30_000  # how long a SQLite writer waits for another one's lock
    sqlite_open_wait_s = 5.0  # at open: a lock held longer than this is another program's, and one line

    def __init__(self, url: str | None = None, readonly: bool = False) -> None:
        self.url = resolve_url(url)
        self.readonly = readonly
        self.display_url = _redact(self.url)
        parsed = make_url(self.url)
        self.dialect = "sqlite" if parsed.drivername.startswith("sqlite") else "postgresql"
        self.engine = self._engine(parsed)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except (OperationalError, DBAPIError) as exc:
            self.engine.dispose()
            raise NasError(f"cannot reach the store {self.display_url}: {first_line(exc)}") from None
        if readonly:
            self._check_ours()
        else:
            self._migrate()

    # -- connection ---------------------------------------------------------------------------
    def _engine(self, parsed) -> Engine:
        try:
            if self.dialect == "sqlite":
                database = parsed.database or ""
                if database in ("", ":memory:"):
                    raise NasError("an in-memory SQLite store cannot be shared with workers; give a file path")
                path = Path(database)
                if self.readonly:
                    if not path.is_file():
                        raise NasError(f"store file {database!r} does not exist")
                else:
                    if not path.parent.exists() and str(path.parent) not in ("", "."):
                        raise NasError(f"cannot create the store: folder {str(path.parent)!r} does not exist")
                if path.is_file():
                    _probe_sqlite(path, self.display_url, self.readonly, self.sqlite_open_wait_s)
                # Every connection is opened by URI, so a path with '#', '%' or '?' names the same
                # file for readers and writers (percent-escaped; a plain URI would cut it there).
                uri = f"file:{quote(str(path.resolve()))}" + ("?mode=ro" if self.readonly else "")
                busy = int(self.sqlite_busy_ms)
                engine = sa.create_engine("sqlite://", poolclass=sa.pool.QueuePool, creator=lambda: sqlite3.connect(
                    uri, uri=True, timeout=busy / 1000, check_same_thread=False))
                readonly = self.readonly

                @event.listens_for(engine, "connect")
                def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
                    cur = dbapi_conn.cursor()
                    cur.execute(f"PRAGMA busy_timeout={busy}")
                    cur.execute("PRAGMA foreign_keys=ON")
                    if not readonly:
                        cur.execute("PRAGMA journal_mode=WAL")
                        cur.execute("PRAGMA synchronous=NORMAL")
                    cur.close()

                return engine
            connect_args: dict[str, Any] = {"connect_timeout": 5}
            if self.readonly:
                connect_args["options"] = "-c default_transaction_read_only=on"
            return sa.create_engine(self.url, pool_pre_ping=True, connect_args=connect_args)
        except NoSuchModuleError as exc:
            raise NasError(f"no database driver for {self.display_url}: {exc}") from None

    def _check_ours(self) -> None:
        try:
            names = set(sa.inspect(self.engine).get_table_names())
        except (OperationalError, DBAPIError) as exc:
            raise NasError(f"{self.display_url} is not a readable database: {first_line(exc)}") from None
        if VERSION_TABLE not in names or "nas_experiments" not in names:
            raise NasError(f"{self.display_url} is not a nas store (no nas tables in it)")
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()
        with self.engine.connect() as conn:
            current = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        if current != head:
            raise NasError(f"{self.display_url} has store schema {current}, this nas reads {head}: "
                           "run any writing command (nas search ...) with a matching version to migrate")

    def _alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        return cfg

    def _migrate(self) -> None:
        from alembic import command

        cfg = self._alembic_config()
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(74613)"))  # one migrator at a time
                else:
                    names = set(sa.inspect(conn).get_table_names())
                    foreign = names - {t for t in names if t.startswith("nas_")} - {"sqlite_sequence"}
                    if foreign and "nas_experiments" not in names:
                        raise NasError(f"{self.display_url} is a database of something else ({', '.join(sorted(foreign)[:3])}); "
                                       "give nas its own file")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except NasError:
            raise
        except (OperationalError, DBAPIError) as exc:
            raise NasError(f"cannot prepare the store {self.display_url}: {first_line(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions with retries ----------------------------------------------------------------
    def _retrying(self, work: Callable[[Session], T], what: str) -> T:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                with self._session.begin() as session:
                    return work(session)
            except IntegrityError:
                raise
            except (OperationalError, DBAPIError) as exc:
                text = str(exc).lower()
                if "read-only" in text or "readonly" in text:
                    raise NasError(f"the store {self.display_url} is read-only: cannot {what}") from None
                if _is_permanent(exc):
                    raise NasError(f"cannot {what} in {self.display_url}: {first_line(exc)}") from None
                if self.dialect == "sqlite" and "database is locked" in text:  # SQLite already waited its busy timeout
                    raise NasError(f"cannot {what}: the store {self.display_url} stayed locked by another process for "
                                   f"{self.sqlite_busy_ms / 1000:.0f} s (database is locked)") from None
                if attempt == self.retries:
                    raise NasError(f"the store {self.display_url} stayed unreachable while trying to {what} "
                                   f"({self.retries + 1} tries): {first_line(exc)}") from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with self._session() as session:
                yield session
        except (OperationalError, DBAPIError) as exc:
            raise NasError(f"cannot read the store {self.display_url}: {first_line(exc)}") from None


def _probe_sqlite(path: Path, display_url: str, readonly: bool, wait_s: float) -> None:
    """Before the engine touches an existing SQLite file: refuse another program's database
    (switching it to WAL, as a nas writer does, would already change its bytes), a file that is
    no database, and a lock held for more than ``wait_s`` (a writer holds its lock for
    milliseconds; the busy wait of 30 s is for those, not for a process that keeps the file)."""
    uri = f"file:{quote(str(path.resolve()))}"
    try:
        conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=wait_s)
        try:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
        if not readonly:
            conn = sqlite3.connect(uri, uri=True, timeout=wait_s, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")  # the write lock, taken and given back: writes nothing
                conn.execute("ROLLBACK")
            finally:
                conn.close()
    except sqlite3.DatabaseError as exc:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            raise NasError(f"the store {display_url} is locked by another process (waited {wait_s:.0f} s): "
                           "stop it, or use another --db") from None
        if readonly:
            return  # the engine's first read reports it ("file is not a database", "unable to open")
        raise NasError(f"cannot open the store {display_url}: {exc}") from None
    foreign = {n for n in names if not n.startswith("nas_") and n != "sqlite_sequence"}
    if not readonly and foreign and "nas_experiments" not in names:  # a reader says "not a nas store"
        raise NasError(f"{display_url} is a database of something else ({', '.join(sorted(foreign)[:3])}); "
                       "give nas its own file")


def _is_permanent(exc: BaseException) -> bool:
    text = str(exc).lower()
    permanent = ("disk i/o error", "database or disk is full", "no space left", "attempt to write a readonly database",
                 "file is not a database", "permission denied", "does not exist", "authentication failed")
    return any(p in text for p in permanent)

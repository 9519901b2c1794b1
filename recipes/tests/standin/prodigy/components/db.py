"""The database [docs-api]: SQLite `prodigy.db` in the Prodigy home ($PRODIGY_HOME), with the
tables dataset, example and link; an answer is linked to its dataset and its session dataset, so
`get_dataset_examples(dataset)` holds every annotator's answers."""

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set

from ..util import INPUT_HASH_ATTR, TASK_HASH_ATTR

SCHEMA = """
CREATE TABLE IF NOT EXISTS dataset (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
    created INTEGER, meta TEXT, session INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS example (id INTEGER PRIMARY KEY, input_hash INTEGER, task_hash INTEGER,
    content TEXT);
CREATE TABLE IF NOT EXISTS link (id INTEGER PRIMARY KEY, example_id INTEGER, dataset_id INTEGER);
"""


class Database:
    def __init__(self, path: Path):
        self.path = path
        self._conn = sqlite3.connect(str(path), timeout=30)
        self._conn.executescript(SCHEMA)

    def _ids(self, names: Iterable[str]) -> List[int]:
        rows = []
        for name in names:
            row = self._conn.execute("SELECT id FROM dataset WHERE name = ?", (name,)).fetchone()
            if row:
                rows.append(row[0])
        return rows

    @property
    def datasets(self) -> List[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM dataset WHERE session = 0 ORDER BY id")]

    @property
    def sessions(self) -> List[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM dataset WHERE session = 1 ORDER BY id")]

    def __contains__(self, name: str) -> bool:
        return bool(self._ids([name]))

    def add_dataset(self, name: str, meta: Optional[Dict[str, Any]] = None, session: bool = False) -> None:
        with self._conn:
            self._conn.execute("INSERT OR IGNORE INTO dataset (name, created, meta, session) VALUES (?, ?, ?, ?)",
                               (name, int(time.time()), json.dumps(meta or {}), int(session)))

    def add_examples(self, examples: Iterable[Dict[str, Any]], datasets: Iterable[str] = ()) -> None:
        ids = self._ids(datasets)
        with self._conn:
            for eg in examples:
                cursor = self._conn.execute(
                    "INSERT INTO example (input_hash, task_hash, content) VALUES (?, ?, ?)",
                    (eg.get(INPUT_HASH_ATTR), eg.get(TASK_HASH_ATTR), json.dumps(eg)),
                )
                for dataset_id in ids:
                    self._conn.execute("INSERT INTO link (example_id, dataset_id) VALUES (?, ?)",
                                       (cursor.lastrowid, dataset_id))

    def _examples(self, name: str) -> List[Dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT example.content FROM example JOIN link ON link.example_id = example.id "
            "JOIN dataset ON dataset.id = link.dataset_id WHERE dataset.name = ? ORDER BY example.id",
            (name,),
        )
        return [json.loads(content) for (content,) in rows]

    def _hashes(self, column: str, names: Iterable[str]) -> Set[int]:
        ids = self._ids(names)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self._conn.execute(
            f"SELECT example.{column} FROM example JOIN link ON link.example_id = example.id "
            f"WHERE link.dataset_id IN ({marks})", ids)
        return {r[0] for r in rows}

    def get_input_hashes(self, *names: str) -> Set[int]:
        return self._hashes("input_hash", names)

    def get_task_hashes(self, *names: str) -> Set[int]:
        return self._hashes("task_hash", names)

    def close(self) -> None:
        self._conn.close()


class Database112(Database):
    def get_dataset_examples(self, name: str) -> List[Dict[str, Any]]:
        return self._examples(name)


class Database111(Database):
    def get_dataset(self, name: str) -> List[Dict[str, Any]]:
        return self._examples(name)


def connect(db_id: Optional[str] = None, db_settings: Optional[Dict[str, Any]] = None) -> Database:
    from .. import LEGACY

    home = Path(os.environ.get("PRODIGY_HOME") or Path.home() / ".prodigy")
    home.mkdir(parents=True, exist_ok=True)
    return (Database111 if LEGACY else Database112)(home / "prodigy.db")

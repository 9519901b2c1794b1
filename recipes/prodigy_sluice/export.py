"""Continuous export: every answer Prodigy saves also goes to a Sluice sink, as annotators work.

`live_export(components, url)` chains a `before_db` callback onto a recipe's components. Each
batch Prodigy is about to save is appended to a local journal (one JSONL file per dataset and
sink URL, fsync'd before Prodigy writes its database), and a background thread publishes the
journal through the sink's CLI: a complete export with its manifest, rewritten as the journal
grows. Sinks only upload parts whose bytes changed (fs, S3, GCS), so with `max-part-records` in
the URL a publish sends the last part and the manifest.

Nothing saved is lost when Prodigy stops: `on_exit` and (on Ctrl-C) an atexit handler publish
what is left; the sink runs in its own session, so the terminal's Ctrl-C does not cut it off;
and a journal left behind by a killed process is published when the next session starts.
"""

import atexit
import hashlib
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ._connectors import SluiceError, command_for, split_flags
from ._sink import jsonl_bytes, run_sink

try:
    import fcntl
except ImportError:  # Windows: one Prodigy process per journal
    fcntl = None

Examples = List[Dict[str, Any]]
DEFAULT_JOURNAL_DIR = ".sluice/live"


def chain_before_db(components: Dict[str, Any], callback: Callable[[Examples], Examples]) -> Dict[str, Any]:
    """Runs `callback` on what the recipe's own `before_db` (if any) returns."""
    previous = components.get("before_db")

    def before_db(examples: Examples) -> Examples:
        if previous is not None:
            examples = previous(examples)
        return callback(examples)

    components["before_db"] = before_db
    return components


def live_export(
    components: Dict[str, Any],
    url: str,
    *,
    journal_dir: Optional[str] = None,
    interval: float = 0.0,
) -> Dict[str, Any]:
    """Wraps a recipe's components so saved answers are exported to `url` as they are saved.

    `url` is a sink URL with its flags in the query string, e.g.
    `s3://acme/live/{dataset}/?max-part-records=1000`. The dataset comes from the components.
    `interval` is the least number of seconds between two publishes.
    """
    dataset = components.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise SluiceError(
            "live export needs a recipe that saves to a dataset",
            hint="the recipe's components have no `dataset`",
        )
    exporter = LiveExport(url, dataset, journal_dir=journal_dir, interval=interval)
    chain_before_db(components, exporter.append)
    previous_on_exit = components.get("on_exit")

    def on_exit(controller: Any) -> None:
        try:
            if previous_on_exit is not None:
                previous_on_exit(controller)
        finally:
            exporter.close()

    components["on_exit"] = on_exit
    return components


class LiveExport:
    """A durable journal of saved examples, published to a sink in the background."""

    def __init__(self, url: str, dataset: str, *, journal_dir: Optional[str] = None, interval: float = 0.0):
        location, flags = split_flags(url)
        extra = [] if "--dataset" in flags else ["--dataset", dataset]
        self.argv = command_for(url, "sink", extra)
        self.url = url
        self.interval = interval
        folder = Path(journal_dir or os.environ.get("SLUICE_JOURNAL_DIR") or DEFAULT_JOURNAL_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)
        # Keyed by where the export goes, not its flags: changing a flag republishes every answer.
        digest = hashlib.sha256(location.encode()).hexdigest()[:12]
        self.journal = folder / f"{slug}-{digest}.jsonl"
        self._fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._published = -1  # unknown: a journal from an earlier session is published once
        self._last_error: Optional[str] = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()  # set by close(); also cuts the wait between publishes short
        self._worker = threading.Thread(target=self._run, name="sluice-live-export", daemon=True)
        self._worker.start()
        atexit.register(self.close)

    def append(self, examples: Examples) -> Examples:
        """The `before_db` callback: the batch is on disk before Prodigy saves it."""
        if examples:
            data = jsonl_bytes(examples)
            with self._changed:
                os.write(self._fd, data)  # one O_APPEND write: whole lines even with two writers
                os.fsync(self._fd)
                self._changed.notify()
        return examples

    def close(self) -> None:
        """Publishes what is left, then stops; safe to call more than once."""
        with self._changed:
            if self._stopping.is_set():
                return
            self._stopping.set()
            self._changed.notify()
        atexit.unregister(self.close)
        self._worker.join()
        if self._pending() and not self._publish():
            sys.stderr.write(
                f"sluice: the live export to {self.url} is behind: {self._last_error}\n"
                f"sluice: every saved answer is kept in {self.journal}; the next session with the same dataset and URL publishes it\n"
            )
        os.close(self._fd)

    def _pending(self) -> bool:
        return os.path.getsize(self.journal) != self._published

    def _run(self) -> None:
        failures = 0
        while True:
            with self._changed:
                while not self._stopping.is_set() and not self._pending():
                    self._changed.wait()
                if self._stopping.is_set():
                    return
            if self._publish():
                failures = 0
                delay = self.interval
            else:
                failures += 1
                delay = max(self.interval, min(60.0, 2.0**failures))
            if delay > 0:
                self._stopping.wait(timeout=delay)

    def _publish(self) -> bool:
        """Runs the sink over the journal's complete lines; True when the export is current."""
        with open(self.journal, "rb") as journal:
            if fcntl is not None:
                fcntl.flock(journal, fcntl.LOCK_EX)  # one publisher per journal at a time
            size = os.fstat(journal.fileno()).st_size
            if size == 0:
                self._published = 0
                return True
            sent, failure = run_sink(self.argv, journal, size)
            if failure is None:
                self._published = sent
                self._last_error = None
                return True
            error = str(failure)
            if error != self._last_error:
                sys.stderr.write(f"sluice: live export failed, retrying: {error}\n")
            self._last_error = error
            return False

"""Publishing a dataset: `prodigy sluice.publish DATASET SINK_URL --every 60`, or `publish()`.

It wraps no recipe, so it works beside any recipe of any Prodigy version: it reads the dataset
through Prodigy's database API (`prodigy.components.db.connect()`, then `get_dataset_examples`,
or `get_dataset` before 1.12), which holds every annotator's and every session's answers, and
hands them to the sink CLI as `prodigy db-out DATASET | <sink> URL` would. Sinks write only what
changed (an unchanged export writes nothing; with `max-part-records` only the last part and the
manifest), and a publish is skipped outright when the dataset has not changed since the last one.
"""

import hashlib
import io
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ._connectors import SluiceError, command_for, split_flags
from ._sink import jsonl_bytes, run_sink


def _reader(db: Any, dataset: str) -> Callable[[], List[Dict[str, Any]]]:
    if dataset not in db:
        raise SluiceError(
            f"no dataset {dataset!r} in the Prodigy database",
            hint="check the name with `prodigy stats -l`, and that PRODIGY_HOME points where Prodigy saves",
        )
    read = getattr(db, "get_dataset_examples", None) or db.get_dataset  # 1.12+, or before
    return lambda: list(read(dataset) or [])


def publish(
    dataset: str,
    url: str,
    *,
    every: float = 0.0,
    db: Any = None,
    stop: Optional[threading.Event] = None,
    log: Callable[[str], None] = lambda line: sys.stderr.write(line + "\n"),
) -> int:
    """Exports `dataset` to the sink at `url` now and, with `every`, again every so many seconds.

    Runs until Ctrl-C (SIGINT) or SIGTERM in the main thread, or until `stop` is set, then
    publishes once more so the export holds everything saved. Returns the number of answers in
    the last export. Raises SluiceError when the dataset does not exist, or when the last
    publish fails; a failing publish in between is reported and tried again.
    """
    if db is None:
        from prodigy.components.db import connect

        db = connect()
    read = _reader(db, dataset)
    _, flags = split_flags(url)
    argv = command_for(url, "sink", [] if "--dataset" in flags else ["--dataset", dataset])
    stop = stop or threading.Event()
    restore = _stop_on_signals(stop, log) if every > 0 else None
    published: Optional[str] = None
    count = 0
    try:
        while True:
            final = stop.is_set() or every <= 0
            examples = read()
            data = jsonl_bytes(examples)
            digest = hashlib.sha256(data).hexdigest()
            if not examples:
                log(f"sluice: {dataset} holds no answers yet; nothing to publish")
                published = digest
            elif digest != published:
                _, failure = run_sink(argv, io.BytesIO(data), len(data))
                if failure is None:
                    published, count = digest, len(examples)
                    log(f"sluice: published {len(examples)} answers of {dataset} to {url}")
                elif final:
                    raise failure
                else:
                    log(f"sluice: publish failed, trying again in {every:g} s: {failure}")
            if final:
                return count
            deadline = time.monotonic() + every
            while not stop.is_set() and time.monotonic() < deadline:
                stop.wait(min(0.25, deadline - time.monotonic()))  # short waits: a signal handler sets it
    finally:
        if restore:
            restore()


def _stop_on_signals(stop: threading.Event, log: Callable[[str], None]) -> Optional[Callable[[], None]]:
    """Ctrl-C or SIGTERM ends the loop after one last publish; a second Ctrl-C ends it at once."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log("sluice: publishing what is left (Ctrl-C again to stop at once)")

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore

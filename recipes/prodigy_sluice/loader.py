"""The `sluice` Prodigy loader: `prodigy ner.manual ds blank:en s3://b/p --loader sluice ...`.

It runs the connector's Node CLI and yields its JSONL lines as task dicts, one at a time as
Prodigy asks for them: the pipe's backpressure keeps the CLI only a little ahead. When Prodigy
stops reading (the generator is closed or collected) the CLI is terminated and reaped. When
the stream ends while the CLI still serves media (the default `media=proxy`), it keeps running
until this Python process exits; it also stops by itself if this process dies, because it
watches the pid in SLUICE_PARENT_PID.
"""

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Dict, Iterator, Set

from ._connectors import SluiceError, StderrTail, cli_failure, command_for

_SERVING_MEDIA = "serving media at "
_serving: Set[subprocess.Popen] = set()
_serving_lock = threading.Lock()


def load(source: Any, *args: Any, **kwargs: Any) -> Iterator[Dict[str, Any]]:
    """Prodigy loader entry point: `source` is a Sluice URL or path, flags in its query string.

    The URL is checked and the CLI found right away, so a typo fails when the recipe starts;
    the CLI itself starts on the first task requested.
    """
    url = os.fspath(source)
    argv = command_for(url, "source")
    return _tasks(argv, url)


def _tasks(argv, url: str) -> Iterator[Dict[str, Any]]:
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "SLUICE_PARENT_PID": str(os.getpid())},
    )
    tail = StderrTail()
    serving = threading.Event()
    reader = threading.Thread(target=_pump_stderr, args=(proc, tail, serving), daemon=True)
    reader.start()
    finished = False
    try:
        for number, line in enumerate(proc.stdout, 1):
            yield _task(line, number, url)
        # stdout closed: either the CLI is done, or it stays up to serve media.
        while not serving.is_set():
            try:
                proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
        reader.join(timeout=5 if proc.poll() is not None else 0)
        if proc.poll() is None:
            with _serving_lock:
                _serving.add(proc)
            threading.Thread(target=_reap, args=(proc,), daemon=True).start()
        elif proc.returncode != 0:
            raise cli_failure(argv, tail, proc.returncode)
        finished = True
    finally:
        if not finished:
            _stop(proc)
        proc.stdout.close()


def _task(line: bytes, number: int, url: str) -> Dict[str, Any]:
    try:
        task = json.loads(line)
    except ValueError as error:
        raise SluiceError(
            f"{url}: line {number} of the connector's output is not JSON: {error}",
            hint="run the CLI by hand to see what it prints",
        ) from None
    if not isinstance(task, dict):
        raise SluiceError(
            f"{url}: line {number} of the connector's output is a JSON {type(task).__name__}, not a task object",
            hint="a Sluice source prints one JSON object per line",
        )
    return task


def _pump_stderr(proc: subprocess.Popen, tail: StderrTail, serving: threading.Event) -> None:
    """Shows the CLI's warnings and progress on our stderr and keeps the tail for errors."""
    for raw in proc.stderr:
        line = raw.decode("utf-8", "replace")
        tail.add(line)
        sys.stderr.write(line)
        if _SERVING_MEDIA in line:
            serving.set()
    proc.stderr.close()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _reap(proc: subprocess.Popen) -> None:
    proc.wait()
    with _serving_lock:
        _serving.discard(proc)


@atexit.register
def _stop_media_servers() -> None:
    with _serving_lock:
        running = list(_serving)
    for proc in running:
        _stop(proc)

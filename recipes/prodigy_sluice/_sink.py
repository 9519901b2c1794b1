"""Runs a Sluice sink CLI over JSONL bytes: what the live export and `publish` share."""

import json
import subprocess
import tempfile
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

from ._connectors import SluiceError, StderrTail, cli_failure


def run_sink(argv: List[str], data: BinaryIO, size: int) -> Tuple[int, Optional[SluiceError]]:
    """Pipes the first `size` bytes of `data`, cut after the last complete line, into the sink.

    Returns the bytes sent and None when the export is written, else the sink's error. The sink runs in its own process session, so the terminal's Ctrl-C does
    not cut a publish short.
    """
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
        sent = 0
        try:
            sent = _copy(data, proc.stdin, size)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the sink stopped reading: its exit code and stderr say why
        code = proc.wait()
        if code == 0:
            return sent, None
        stderr.seek(0)
        tail = StderrTail()
        for line in stderr.read().decode("utf-8", "replace").splitlines():
            tail.add(line)
        return sent, cli_failure(argv, tail, code)


def _copy(source: BinaryIO, target: BinaryIO, size: int) -> int:
    """Copies the first `size` bytes, cut after the last complete line; returns bytes sent."""
    remaining = size
    sent = 0
    held = b""
    while remaining > 0:
        chunk = source.read(min(1 << 20, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        chunk = held + chunk
        cut = chunk.rfind(b"\n") + 1
        target.write(chunk[:cut])
        sent += cut
        held = chunk[cut:]
    return sent


def jsonl_bytes(examples: List[Dict[str, Any]]) -> bytes:
    """Examples as JSONL, one object a line, as the live export journals them."""
    return "".join(json.dumps(eg, ensure_ascii=False) + "\n" for eg in examples).encode("utf-8")

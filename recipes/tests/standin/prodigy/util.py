"""Hashing and small helpers, as DESIGN.md section 4 describes Prodigy's (see the package doc)."""

import json
import struct
from importlib.metadata import entry_points
from pathlib import Path
from typing import List

INPUT_HASH_ATTR = "_input_hash"
TASK_HASH_ATTR = "_task_hash"
INPUT_KEYS = ("text", "image", "html", "input")
TASK_KEYS = ("spans", "label", "options", "arcs")
IGNORE = ("score", "rank", "model", "source", "pattern", "priority", "path",
          "_view_id", "_session_id", "_annotator_id", "answer")


def murmurhash3_32(text: str) -> int:
    """MurmurHash3 x86 32-bit, seed 0, over UTF-8, as a signed int."""
    data = text.encode("utf-8")
    h, n = 0, len(data)
    mask = 0xFFFFFFFF
    for i in range(0, n - n % 4, 4):
        k = struct.unpack_from("<I", data, i)[0]
        k = (k * 0xCC9E2D51) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * 0x1B873593) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    k = 0
    for j, byte in enumerate(data[n - n % 4:]):
        k |= byte << (8 * j)
    if n % 4:
        k = (k * 0xCC9E2D51) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * 0x1B873593) & mask
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def _strip(value, ignore):
    if isinstance(value, dict):
        return {k: _strip(v, ignore) for k, v in value.items() if k not in ignore}
    if isinstance(value, list):
        return [_strip(v, ignore) for v in value]
    return value


def _dumps(value, ignore) -> str:
    return json.dumps(_strip(value, ignore), sort_keys=True, separators=(",", ":"))


def get_hash(task, keys, prefix="", ignore=IGNORE) -> int:
    parts = "".join(f"{key}={_dumps(task[key], ignore)}" for key in keys if key in task)
    if not parts:
        parts = _dumps({k: v for k, v in task.items() if k != TASK_HASH_ATTR}, ignore)
    return murmurhash3_32(prefix + parts)


def set_hashes(task, input_keys=INPUT_KEYS, task_keys=TASK_KEYS, ignore=IGNORE, overwrite=False):
    if not overwrite and INPUT_HASH_ATTR in task and TASK_HASH_ATTR in task:
        return task
    if overwrite or INPUT_HASH_ATTR not in task:
        task.pop(INPUT_HASH_ATTR, None)
        task.pop(TASK_HASH_ATTR, None)
        task[INPUT_HASH_ATTR] = get_hash(task, input_keys, ignore=ignore)
    task[TASK_HASH_ATTR] = get_hash(task, task_keys, prefix=str(task[INPUT_HASH_ATTR]), ignore=ignore)
    return task


def split_string(value: str) -> List[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def get_labels(value: str) -> List[str]:
    """Comma-separated labels, or a text file with one label per line."""
    path = Path(value)
    if path.is_file():
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return split_string(value)


def group_entry_points(group: str):
    found = entry_points()
    return found.select(group=group) if hasattr(found, "select") else found.get(group, [])

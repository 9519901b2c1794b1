"""1.12+: `get_stream` returns a `Stream` [issue-20, ann, hf]. Below 1.12 it is a plain generator
from `prodigy.components.loaders` (see loaders.py)."""

import base64
import json
import mimetypes
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

from ..util import TASK_HASH_ATTR, group_entry_points, set_hashes


class Stream:
    """An iterator of tasks that recipes extend with `apply` (a function of the stream)."""

    def __init__(self, iterator: Iterable[Dict[str, Any]]):
        self._iterator = iter(iterator)

    @classmethod
    def from_iterable(cls, iterable: Iterable[Dict[str, Any]]) -> "Stream":
        return cls(iterable)

    def apply(self, func: Callable[..., Iterable[Dict[str, Any]]], *args: Any, **kwargs: Any) -> None:
        self._iterator = iter(func(self._iterator, *args, **kwargs))

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return self

    def __next__(self) -> Dict[str, Any]:
        return next(self._iterator)


def load(source: Any, loader: Optional[str]) -> Iterable[Dict[str, Any]]:
    if loader is not None:
        for ep in group_entry_points("prodigy_loaders"):
            if ep.name == loader:
                return ep.load()(source)
        if loader == "images":
            return _images(source)
        raise ValueError(f"Can't find loader: {loader}")
    if not isinstance(source, str):
        return source  # already a stream of tasks
    return _jsonl(sys.stdin if source == "-" else open(source, encoding="utf-8"))


def _images(folder: str) -> Iterator[Dict[str, Any]]:
    """A folder of images as `data:` URIs with their `path` [ann: `Image.open(ex["path"])`]."""
    for path in sorted(Path(folder).iterdir()):
        mime = mimetypes.guess_type(path.name)[0]
        if mime and mime.startswith("image/"):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            yield {"image": f"data:{mime};base64,{data}", "text": path.name, "path": str(path),
                   "meta": {"file": path.name}}


def _jsonl(lines):
    for line in lines:
        if line.strip():
            yield json.loads(line)


def hashed(tasks: Iterable[Dict[str, Any]], rehash: bool, dedup: bool) -> Iterator[Dict[str, Any]]:
    seen = set()
    for task in tasks:
        set_hashes(task, overwrite=rehash)
        if dedup:
            if task[TASK_HASH_ATTR] in seen:
                continue
            seen.add(task[TASK_HASH_ATTR])
        yield task


def get_stream(source: Any, *, loader: Optional[str] = None, rehash: bool = False, dedup: bool = False,
               input_key: str = "text", is_binary: bool = False, **kwargs: Any) -> Stream:
    return Stream(hashed(load(source, loader), rehash, dedup))

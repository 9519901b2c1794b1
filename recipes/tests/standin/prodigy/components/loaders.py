"""Below 1.12: `get_stream` here returns a plain generator [recipes]."""

from typing import Any, Dict, Iterator, Optional

from .stream import _jsonl, hashed, load


def JSONL(path: str) -> Iterator[Dict[str, Any]]:
    return _jsonl(open(path, encoding="utf-8"))


def get_stream(source: Any, api: Any = None, loader: Optional[str] = None, rehash: bool = False,
               dedup: bool = False, input_key: str = "text", **kwargs: Any) -> Iterator[Dict[str, Any]]:
    return hashed(load(source, loader), rehash, dedup)

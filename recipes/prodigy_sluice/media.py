"""Media hygiene: keep base64 media out of Prodigy's database."""

from typing import Any, Dict, List

MEDIA_KEYS = ("image", "audio", "video")


def strip_inline_media(examples: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A `before_db` callback: swaps `data:` URIs for the item's canonical URI.

    A Sluice source run with `media=inline` puts the file's bytes in the task and its URI
    (`s3://bucket/key`, `gs://...`, `file:///...`) in `meta.source`. Only tasks made from a
    whole media file are changed (no `meta.line` / `meta.row`: a task read from a JSONL or CSV
    line has the file's URI there, not its own). Hashes are left as they are, so examples
    still match their tasks.
    """
    for eg in examples:
        meta = eg.get("meta")
        if not isinstance(meta, dict) or "line" in meta or "row" in meta:
            continue
        uri = meta.get("source")
        if not isinstance(uri, str):
            continue
        for key in MEDIA_KEYS:
            value = eg.get(key)
            if isinstance(value, str) and value.startswith("data:"):
                eg[key] = uri
    return examples

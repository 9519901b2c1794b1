"""Media hygiene: keep base64 media out of Prodigy's database."""

from typing import Any, Dict, List

MEDIA_KEYS = ("image", "audio", "video")


def strip_inline_media(examples: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A `before_db` callback: puts a task's `path` back in place of a `data:` URI.

    What Prodigy's own `--remove-base64` does for `image.manual` (and `audio.manual` by
    default), for every media key and any recipe: a Sluice source gives each media task a
    top-level `path`, the item's canonical URI (`s3://bucket/key`, `gs://...`, `file:///...`),
    so the database keeps that reference. Hashes are left as they are, so examples still match
    their tasks.
    """
    for eg in examples:
        path = eg.get("path")
        if not isinstance(path, str):
            continue
        for key in MEDIA_KEYS:
            value = eg.get(key)
            if isinstance(value, str) and value.startswith("data:"):
                eg[key] = path
    return examples

import base64
import mimetypes
import urllib.request
from typing import Any, Dict, Iterable, Iterator, List


def fetch_media(stream: Iterable[Dict[str, Any]], input_keys: List[str], skip: bool = False) -> Iterator[Dict[str, Any]]:
    """Replaces media URLs with `data:` URIs of their bytes [issue-20: image.manual without --no-fetch]."""
    for eg in stream:
        for key in input_keys:
            url = eg.get(key)
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                with urllib.request.urlopen(url, timeout=30) as response:
                    data = response.read()
                    mime = response.headers.get_content_type() or mimetypes.guess_type(url)[0]
                eg[key] = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        yield eg


def add_tokens(nlp: Any, stream: Iterable[Dict[str, Any]], **kwargs: Any) -> Iterator[Dict[str, Any]]:
    for eg in stream:
        if "text" in eg and "tokens" not in eg:
            eg["tokens"] = nlp.tokens(eg["text"])
        yield eg

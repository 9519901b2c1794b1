"""`image.manual` [ann: `image_manual(dataset, source=..., loader=..., label=..., remove_base64=...)`;
issue-20: URLs fetched and inlined unless --no-fetch, `--remove-base64` restores `path`]."""

from typing import List, Optional

from .. import LEGACY
from ..components.preprocess import fetch_media
from ..core import recipe


def remove_base64(examples):
    for eg in examples:
        if isinstance(eg.get("image"), str) and eg["image"].startswith("data:") and "path" in eg:
            eg["image"] = eg["path"]
    return examples


def _components(dataset, stream, label, exclude, strip):
    return {
        "dataset": dataset,
        "view_id": "image_manual",
        "stream": stream,
        "exclude": exclude,
        "before_db": remove_base64 if strip else None,
        "config": {"labels": label or [], "exclude_by": "input"},
    }


if LEGACY:
    from ..components.loaders import get_stream
    from ..util import split_string

    @recipe(
        "image.manual",
        dataset=("Dataset to save annotations to", "positional", None, str),
        source=("Data to annotate", "positional", None, str),
        loader=("Loader", "option", "lo", str),
        label=("Comma-separated labels", "option", "l", split_string),
        exclude=("Datasets to exclude", "option", "e", split_string),
        no_fetch=("Don't fetch images as base64", "flag", "NF", bool),
        remove_base64=("Remove base64-encoded image data before storing in the DB", "flag", "R", bool),
    )
    def image_manual(dataset, source, loader="images", label=None, exclude=None, no_fetch=False,
                     remove_base64=False):
        stream = get_stream(source, loader=loader, rehash=True, dedup=True, input_key="image")
        if not no_fetch:
            stream = fetch_media(stream, ["image"])
        return _components(dataset, stream, label, exclude, remove_base64)

else:
    from ..components.stream import get_stream
    from ..core import Arg

    @recipe(
        "image.manual",
        dataset=Arg(help="Dataset to save annotations to"),
        source=Arg(help="Data to annotate (directory of images, file path or '-' to read from standard input)"),
        loader=Arg("--loader", "-lo", help="Loader if source is not directory of images"),
        label=Arg("--label", "-l", help="Comma-separated label(s) to annotate or text file with one label per line"),
        exclude=Arg("--exclude", "-e", help="Comma-separated list of dataset IDs whose annotations to exclude"),
        no_fetch=Arg("--no-fetch", "-NF", help="Don't fetch images as base64"),
        remove_base64=Arg("--remove-base64", "-R", help="Remove base64-encoded image data before storing example in the DB"),
    )
    def image_manual(
        dataset: str,
        source: str,
        loader: Optional[str] = "images",
        label: Optional[List[str]] = None,
        exclude: Optional[List[str]] = None,
        no_fetch: bool = False,
        remove_base64: bool = False,
    ):
        """Manually annotate images by drawing rectangular bounding boxes or polygon shapes."""
        stream = get_stream(source, loader=loader, rehash=True, dedup=True, input_key="image")
        if not no_fetch:
            stream.apply(fetch_media, ["image"])
        return _components(dataset, stream, label, exclude, remove_base64)

from prodigy import recipe
from prodigy.components.stream import get_stream

from .ner import split_string


@recipe(
    "image.manual",
    dataset=("Dataset to save annotations to", "positional", None, str),
    source=("Data to annotate", "positional", None, str),
    loader=("Loader", "option", "lo", str),
    label=("Comma-separated labels", "option", "l", split_string),
)
def image_manual(dataset, source, loader=None, label=None):
    return {
        "dataset": dataset,
        "view_id": "image_manual",
        "stream": get_stream(source, loader=loader),
        "config": {"labels": label or []},
    }

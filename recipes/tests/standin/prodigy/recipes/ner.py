from prodigy import recipe
from prodigy.components.stream import get_stream


def split_string(value):
    return [part.strip() for part in value.split(",") if part.strip()]


@recipe(
    "ner.manual",
    dataset=("Dataset to save annotations to", "positional", None, str),
    spacy_model=("Loadable spaCy pipeline or blank:lang", "positional", None, str),
    source=("Data to annotate", "positional", None, str),
    loader=("Loader", "option", "lo", str),
    label=("Comma-separated labels", "option", "l", split_string),
)
def manual(dataset, spacy_model, source, loader=None, label=None):
    stream = get_stream(source, loader=loader, rehash=True, dedup=True)
    return {
        "dataset": dataset,
        "view_id": "ner_manual",
        "stream": stream,
        "config": {"labels": label or [], "lang": spacy_model.split(":")[-1]},
    }

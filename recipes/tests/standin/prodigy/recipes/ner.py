"""`ner.manual` with the parameters and flags of Prodigy's docs [ann, pdf, recipes]."""

from typing import List, Optional

from .. import LEGACY
from ..components.preprocess import add_tokens
from ..core import recipe


def _components(dataset, nlp, stream, label, exclude):
    return {
        "dataset": dataset,
        "view_id": "ner_manual",
        "stream": stream,
        "exclude": exclude,
        # A pipeline object, not its name: a string fails here as it does in Prodigy.
        "config": {"lang": nlp.lang, "labels": label or []},
    }


if LEGACY:
    from ..components.loaders import get_stream
    from ..util import split_string

    @recipe(
        "ner.manual",
        dataset=("Dataset to save annotations to", "positional", None, str),
        spacy_model=("Loadable spaCy pipeline or blank:lang", "positional", None, str),
        source=("Data to annotate", "positional", None, str),
        loader=("Loader", "option", "lo", str),
        label=("Comma-separated labels", "option", "l", split_string),
        exclude=("Datasets to exclude", "option", "e", split_string),
        highlight_chars=("Highlight characters", "flag", "C", bool),
    )
    def manual(dataset, spacy_model, source, loader=None, label=None, exclude=None, highlight_chars=False):
        import spacy

        nlp = spacy.blank(spacy_model.split(":", 1)[1]) if spacy_model.startswith("blank:") else spacy.load(spacy_model)
        stream = add_tokens(nlp, get_stream(source, loader=loader, rehash=True, dedup=True))
        return _components(dataset, nlp, stream, label, exclude)

else:
    from spacy.language import Language

    from ..components.stream import get_stream
    from ..core import Arg

    @recipe(
        "ner.manual",
        dataset=Arg(help="Dataset to save annotations to"),
        nlp=Arg(help="Loadable spaCy pipeline for tokenization or blank:lang (e.g. blank:en)"),
        source=Arg(help="Data to annotate (file path or '-' to read from standard input)"),
        loader=Arg("--loader", "-lo", help="Loader (guessed from file extension if not set)"),
        label=Arg("--label", "-l", help="Comma-separated label(s) to annotate or text file with one label per line"),
        exclude=Arg("--exclude", "-e", help="Comma-separated list of dataset IDs whose annotations to exclude"),
        highlight_chars=Arg("--highlight-chars", "-C", help="Allow highlighting individual characters"),
    )
    def manual(
        dataset: str,
        nlp: Language,
        source: str,
        loader: Optional[str] = None,
        label: Optional[List[str]] = None,
        exclude: Optional[List[str]] = None,
        highlight_chars: bool = False,
    ):
        """Mark spans by token."""
        stream = get_stream(source, loader=loader, rehash=True, dedup=True, input_key="text")
        components = _components(dataset, nlp, stream, label, exclude)
        stream.apply(lambda tasks: add_tokens(nlp, tasks))
        return components

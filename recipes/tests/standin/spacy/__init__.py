"""A stand-in for the two spaCy calls Prodigy's `Language` arguments make: `spacy.blank(lang)` and
`spacy.load(name)` (a name with no installed package fails with spaCy's error E050)."""

from .language import Language

__all__ = ["Language", "blank", "load"]


def blank(lang: str) -> Language:
    return Language(lang)


def load(name: str) -> Language:
    raise OSError(
        f"[E050] Can't find model '{name}'. It doesn't seem to be a Python package or a valid path to a data directory."
    )

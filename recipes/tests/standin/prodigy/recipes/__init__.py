from . import image, ner  # noqa: F401

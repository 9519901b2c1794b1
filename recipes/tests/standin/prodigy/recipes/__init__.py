from . import image, ner  # noqa: F401  (registers the built-in recipes)

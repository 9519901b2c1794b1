"""A stand-in for the small, documented part of Prodigy that prodigy-sluice relies on.

It is not Prodigy and copies none of it. It offers: the `recipe` decorator with plac-style
argument annotations, `get_recipe` (built-in recipes and the `prodigy_recipes` entry
points), loaders from the `prodigy_loaders` entry points through `get_stream`, a built-in
`ner.manual` and `image.manual` that return components, and a command line
(`python -m prodigy RECIPE ...`, `python -m prodigy db-out DATASET`) that drives the
components the way the server does: it pulls the stream in batches, answers the tasks,
calls `update` and `before_db`, saves what `before_db` returns, and calls `on_exit` when the
session ends normally. Its database is a JSONL file per dataset in $PRODIGY_STANDIN_DB.
"""

from importlib.metadata import entry_points

__version__ = "0.0-standin"
_RECIPES = {}


def recipe(name, **annotations):
    """Registers a recipe; annotations are (help, kind, short, type) tuples, as plac reads them."""

    def register(func):
        func.__annotations__ = dict(annotations)
        _RECIPES[name] = func
        return func

    return register


def get_recipe(name):
    import prodigy.recipes  # noqa: F401  registers the built-in recipes

    if name not in _RECIPES:
        for ep in entry_points(group="prodigy_recipes"):
            if ep.name == name:
                ep.load()
    return _RECIPES.get(name)

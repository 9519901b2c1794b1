"""`prodigy sluice.export`: any recipe, with every saved answer exported as annotators work."""

import shlex
from typing import Any, Dict, Optional

import prodigy

from ._connectors import SluiceError
from ._recipe_args import call_recipe
from .export import chain_before_db, live_export
from .media import strip_inline_media


@prodigy.recipe(
    "sluice.export",
    recipe=("Recipe to run, e.g. ner.manual", "positional", None, str),
    sink=("Sink URL; {dataset} and {date} fill in, flags go in the query string", "positional", None, str),
    args=("The recipe's own arguments, as one quoted string", "positional", None, str),
    interval=("Least seconds between two publishes (default 0: after every save)", "option", "i", float),
    journal=("Folder of the local journal (default .sluice/live)", "option", "j", str),
    strip_media=("Store the source URI instead of inline data: URIs", "flag", "S", bool),
)
def export(
    recipe: str,
    sink: str,
    args: str = "",
    interval: float = 0.0,
    journal: Optional[str] = None,
    strip_media: bool = False,
) -> Dict[str, Any]:
    """prodigy sluice.export ner.manual 's3://acme/live/{dataset}/' 'news blank:en ./news.jsonl --label PERSON,ORG'"""
    func = prodigy.get_recipe(recipe)
    if func is None:
        raise SluiceError(f"sluice.export: Prodigy has no recipe {recipe!r}", hint="check the name with `prodigy --help`")
    components = call_recipe(func, recipe, shlex.split(args))
    if strip_media:
        chain_before_db(components, strip_inline_media)
    return live_export(components, sink, journal_dir=journal, interval=interval)

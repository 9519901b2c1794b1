"""The recipes `sluice.publish` and `sluice.export`.

Both declare their arguments as plac-style tuples, which every Prodigy version reads (up to 1.11
through plac, from 1.12 turned into radicli `Arg`s), and both end with one error line and exit
code 1 on an expected failure instead of a traceback.
"""

import functools
import importlib
import shlex
import subprocess
import sys
from typing import Any, Callable, Dict, Optional

import prodigy

from ._connectors import SluiceError
from ._recipe_args import PUBLISH_HINT, call_recipe, declared_by_plac
from .export import chain_before_db, live_export
from .media import strip_inline_media
from .publish import publish


def _one_line_errors(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except SluiceError as error:
                sys.stderr.write(f"{name}: error: {error.message}\n")
                if error.hint:
                    sys.stderr.write(f"{name}: hint: {error.hint}\n")
                raise SystemExit(1) from None

        return run

    return wrap


@prodigy.recipe(
    "sluice.publish",
    dataset=("Dataset to export: every annotator's and session's answers", "positional", None, str),
    sink=("Sink URL; {dataset} and {date} fill in, flags go in the query string", "positional", None, str),
    every=("Publish again every this many seconds until Ctrl-C (default 0: once)", "option", "e", float),
)
@_one_line_errors("sluice.publish")
def publish_recipe(dataset: str, sink: str, every: float = 0.0) -> None:
    """prodigy sluice.publish news 's3://acme/labels/{dataset}/' --every 60"""
    publish(dataset, sink, every=every)


def find_recipe(name: str) -> Callable[..., Any]:
    """A recipe function by name, through documented ways only: a `prodigy_recipes` entry point
    (plugins), a built-in imported from `prodigy.recipes.<module>` (as Explosion's plugins do),
    or `prodigy.get_recipe` on Prodigy up to 1.11, where it exists."""
    from importlib.metadata import entry_points

    found = entry_points()
    group = found.select(group="prodigy_recipes") if hasattr(found, "select") else found.get("prodigy_recipes", [])
    for ep in group:
        if ep.name == name:
            return ep.load()
    module, _, rest = name.partition(".")
    if rest:
        try:
            recipes = importlib.import_module(f"prodigy.recipes.{module}")
        except ImportError:
            recipes = None
        attr = rest.replace(".", "_").replace("-", "_")
        for candidate in (f"{module}_{attr}", attr):
            func = getattr(recipes, candidate, None)
            if callable(func):
                return func
    legacy = getattr(prodigy, "get_recipe", None)
    func = legacy(name) if legacy else None
    if func is None:
        raise SluiceError(f"sluice.export cannot find the recipe {name!r} to wrap", hint=PUBLISH_HINT)
    return func


def recipe_help(name: str) -> str:
    """`prodigy RECIPE --help`: where Prodigy 1.12+ shows a recipe's options and short flags."""
    run = subprocess.run([sys.executable, "-m", "prodigy", name, "--help"], capture_output=True, text=True,
                         timeout=300)
    if run.returncode != 0:
        raise SluiceError(f"sluice.export could not read `prodigy {name} --help`", hint=PUBLISH_HINT)
    return run.stdout


@prodigy.recipe(
    "sluice.export",
    recipe=("Recipe to run, e.g. ner.manual", "positional", None, str),
    sink=("Sink URL; {dataset} and {date} fill in, flags go in the query string", "positional", None, str),
    args=("The recipe's own arguments, as one quoted string", "positional", None, str),
    interval=("Least seconds between two publishes (default 0: after every save)", "option", "i", float),
    journal=("Folder of the local journal (default .sluice/live)", "option", "j", str),
    strip_media=("Store the item's URI (path) instead of inline data: URIs", "flag", "S", bool),
)
@_one_line_errors("sluice.export")
def export(
    recipe: str,
    sink: str,
    args: str = "",
    interval: float = 0.0,
    journal: Optional[str] = None,
    strip_media: bool = False,
) -> Dict[str, Any]:
    """prodigy sluice.export ner.manual 's3://acme/live/{dataset}/' 'news blank:en ./news.jsonl -l PERSON,ORG'"""
    func = find_recipe(recipe)
    help_text = None if declared_by_plac(func) else recipe_help(recipe)
    components = call_recipe(func, recipe, shlex.split(args), help_text)
    if not isinstance(components, dict):
        raise SluiceError(f"sluice.export: {recipe} returned no components to wrap", hint=PUBLISH_HINT)
    if strip_media:
        chain_before_db(components, strip_inline_media)
    return live_export(components, sink, journal_dir=journal, interval=interval)

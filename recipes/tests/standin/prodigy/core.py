"""The recipe decorator, the recipe registry and the command line's argument parsing.

1.12+ (radicli): the decorator keeps its `Arg`s (or plac tuples, turned into `Arg`s) in a private
registry and returns the function unchanged. Below 1.12 (plac): it writes the tuples into the
function's `__annotations__`, and `get_recipe(name)` returns the function.
"""

import argparse
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .util import get_labels, group_entry_points


@dataclass
class Arg:
    """A command-line argument: positional without `option`, else `--option` and `-short`."""

    option: Optional[str] = None
    short: Optional[str] = None
    help: Optional[str] = None
    converter: Optional[Callable[[str], Any]] = None


@dataclass
class _Recipe:
    name: str
    func: Callable[..., Any]
    args: Dict[str, Arg]


_REGISTRY: Dict[str, _Recipe] = {}


def _legacy() -> bool:
    from . import LEGACY

    return LEGACY


def _from_tuple(name: str, note: tuple) -> Arg:
    help_, kind, short, convert = (tuple(note) + (None,) * 4)[:4]
    if kind in ("option", "flag"):
        return Arg(f"--{name.replace('_', '-')}", f"-{short}" if short else None, help_,
                   convert if kind == "option" else None)
    return Arg(help=help_, converter=convert)


def recipe(name: str, **annotations: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        args = {key: value if isinstance(value, Arg) else _from_tuple(key, value)
                for key, value in annotations.items()}
        if _legacy():
            func.__annotations__ = dict(annotations)  # what plac.annotations does
        _REGISTRY[name] = _Recipe(name, func, args)
        return func

    return register


def _load_builtins() -> None:
    import prodigy.recipes  # noqa: F401  registers the built-in recipes


def find_recipe(name: str) -> Optional[_Recipe]:
    _load_builtins()
    if name not in _REGISTRY:
        for ep in group_entry_points("prodigy_recipes"):
            if ep.name == name:
                ep.load()
    return _REGISTRY.get(name)


def get_recipe(name: str) -> Optional[Callable[..., Any]]:
    """Below 1.12 only."""
    found = find_recipe(name)
    return found.func if found else None


def load_file(path: str) -> None:
    """`-F recipe.py`: runs the file so its decorators register its recipes."""
    source = Path(path)
    code = compile(source.read_text(encoding="utf-8"), str(source), "exec")
    exec(code, {"__name__": f"prodigy_recipe_file_{source.stem}", "__file__": str(source)})


# --- 1.12+ conversion by type hint (a converter registered for a type wins) ------------------

def _load_language(name: str):
    import spacy

    return spacy.blank(name[len("blank:"):]) if name.startswith("blank:") else spacy.load(name)


def _converters() -> Dict[Any, Callable[[str], Any]]:
    from spacy.language import Language

    return {Language: _load_language, List[str]: get_labels, Path: Path}


def _unwrap_optional(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint


def _parser(rec: _Recipe) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"prodigy {rec.name}", description=rec.func.__doc__)
    hints = typing.get_type_hints(rec.func)
    converters = _converters()
    for param in inspect.signature(rec.func).parameters.values():
        arg = rec.args.get(param.name, Arg())
        hint = _unwrap_optional(hints.get(param.name, str))
        convert = converters.get(hint, arg.converter) or (hint if hint in (int, float, str) else None)
        type_name = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
        help_ = f"{arg.help or ''} ({type_name})".strip()
        has_default = param.default is not param.empty
        if arg.option is None:
            parser.add_argument(param.name, type=convert, help=help_, nargs="?" if has_default else None,
                                default=param.default if has_default else None)
        elif hint is bool:
            names = [arg.option] + ([arg.short] if arg.short else [])
            parser.add_argument(*names, dest=param.name, action="store_true", help=help_)
        else:
            names = [arg.option] + ([arg.short] if arg.short else [])
            parser.add_argument(*names, dest=param.name, type=convert, help=help_,
                                default=param.default if has_default else None)
    return parser


def _legacy_parser(rec: _Recipe) -> argparse.ArgumentParser:
    """plac: `--name` and `-short` from the tuples, the tuple's type called on the value."""
    parser = argparse.ArgumentParser(prog=f"prodigy {rec.name}", description=rec.func.__doc__)
    for param in inspect.signature(rec.func).parameters.values():
        help_, kind, short, convert = (tuple(rec.func.__annotations__.get(param.name, ())) + (None,) * 4)[:4]
        names = [f"--{param.name.replace('_', '-')}"] + ([f"-{short}"] if short else [])
        if kind == "flag":
            parser.add_argument(*names, dest=param.name, action="store_true", help=help_)
        elif kind == "option":
            parser.add_argument(*names, dest=param.name, type=convert or str, default=param.default, help=help_)
        else:
            optional = param.default is not param.empty
            parser.add_argument(param.name, type=convert or str, nargs="?" if optional else None,
                                default=param.default if optional else None, help=help_)
    return parser


def parse_recipe_args(rec: _Recipe, argv: List[str]) -> Dict[str, Any]:
    parser = _legacy_parser(rec) if _legacy() else _parser(rec)
    return vars(parser.parse_args(argv))

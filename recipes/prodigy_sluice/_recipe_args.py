"""Calls a recipe function with arguments written as on Prodigy's command line.

`sluice.export ner.manual URL 'news blank:en ./news.jsonl -l A,B'` must call the named recipe as
Prodigy's command line would. What the command line accepts comes from the recipe's declarations:

- Prodigy up to 1.11 (plac): the decorator writes `(help, kind, short, type)` tuples into the
  function's `__annotations__`, so they are read from there.
- Prodigy 1.12+ (radicli): the decorator keeps its `Arg("--label", "-l")` declarations in the
  command line's own registry and leaves the function alone. The one documented place that shows
  them is the recipe's `--help` ("argument annotations ... will also be displayed when you use
  the --help flag"), so option names and short flags are read from that text, and values are
  converted from the function's type hints as Prodigy converts them: `Language` loaded from a
  name (`blank:en` is a blank pipeline), `List[str]` comma-separated or a file with one item
  per line, `int`, `float`, `Path`, `bool` as a flag.
"""

import collections.abc
import inspect
import re
import typing
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from ._connectors import SluiceError

PUBLISH_HINT = "run `prodigy sluice.publish DATASET SINK_URL --every 60` beside the recipe instead: it wraps nothing"


class _Param(NamedTuple):
    name: str
    positional: bool
    options: List[str]  # every option string that sets it: `--label`, `-l`
    flag: bool
    negations: List[str]  # `--no-x` for a flag that defaults to true
    convert: Optional[Callable[[str], Any]]
    required: bool


def _split(value: str) -> List[str]:
    path = Path(value)
    if "," not in value and path.suffix in (".txt", ".text") and path.is_file():
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [part.strip() for part in value.split(",") if part.strip()]


def _language(value: str) -> Any:
    import spacy  # Prodigy needs spaCy, so it is there wherever a recipe asks for a pipeline

    return spacy.blank(value[len("blank:"):]) if value.startswith("blank:") else spacy.load(value)


def _unwrap_optional(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint


def _converter(name: str, hint: Any) -> Optional[Callable[[str], Any]]:
    """How Prodigy's command line turns a string into the value a type hint asks for."""
    hint = _unwrap_optional(hint)
    if hint in (inspect.Parameter.empty, str, Any):
        return None
    if hint in (int, float, Path):
        return hint
    if getattr(hint, "__name__", "") == "Language" and getattr(hint, "__module__", "").startswith("spacy"):
        return _language
    origin = typing.get_origin(hint)
    if hint is list or origin in (list, collections.abc.Iterable, collections.abc.Sequence):
        item = (typing.get_args(hint) or (str,))[0]
        return _split if item is str else lambda value: [item(part) for part in _split(value)]
    if origin is typing.Literal:
        return None
    raise SluiceError(
        f"sluice.export cannot convert the argument {name} ({hint}) as Prodigy would",
        hint=PUBLISH_HINT,
    )


def _hints(func: Callable[..., Any]) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # hints naming what is not importable here: take them as written
        return dict(getattr(func, "__annotations__", {}) or {})


def _plac_params(func: Callable[..., Any]) -> List[_Param]:
    annotations = getattr(func, "__annotations__", {}) or {}
    params = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        note = annotations.get(p.name, ())
        note = note if isinstance(note, tuple) else ()
        kind = (note[1] if len(note) > 1 else None) or "positional"
        short = note[2] if len(note) > 2 else None
        convert = note[3] if len(note) > 3 and callable(note[3]) and note[3] not in (str, bool) else None
        options = [] if kind == "positional" else [f"--{p.name.replace('_', '-')}", f"--{p.name}"]
        if short and kind != "positional":
            options.append(f"-{short}")
        params.append(_Param(p.name, kind == "positional", options, kind == "flag", [], convert,
                             kind == "positional" and p.default is p.empty))
    return params


_SECTION = re.compile(r"^(positional arguments|options|optional arguments):\s*$")
_INVOCATION = re.compile(r"^  (\S.*?)(?:\s{2,}|$)")


def _help_params(func: Callable[..., Any], recipe: str, help_text: str) -> List[_Param]:
    """Options and positionals as `prodigy RECIPE --help` (argparse, under radicli) lists them."""
    positionals: List[str] = []
    options: Dict[str, List[str]] = {}  # parameter -> option strings
    flags: Dict[str, bool] = {}
    negations: Dict[str, List[str]] = {}
    section = None
    signature = inspect.signature(func).parameters
    for line in help_text.splitlines():
        heading = _SECTION.match(line)
        if heading:
            section = heading.group(1)
            continue
        match = _INVOCATION.match(line)
        if not match or section is None:
            if line and not line.startswith(" "):
                section = None
            continue
        invocation = match.group(1)
        if section == "positional arguments":
            positionals.append(invocation.split()[0])
            continue
        strings = [part.strip().split() for part in invocation.split(", ")]
        names = [words[0] for words in strings if words and words[0].startswith("-")]
        if "--help" in names:
            continue
        metavar = next((words[1] for words in strings if len(words) > 1), None)
        # `--x, --no-x`: a flag that defaults to true (radicli's BooleanOptionalAction).
        negative = [n for n in names if n.startswith("--no-") and f"--{n[5:]}" in names]
        longs = [n for n in names if n.startswith("--") and n not in negative]
        candidates = [metavar.lower()] if metavar else [n[2:].replace("-", "_") for n in longs]
        dest = next((c for c in candidates if c in signature), None)
        if dest is None:
            raise SluiceError(
                f"sluice.export cannot tell which argument of {recipe} the option {names[0]} sets",
                hint=PUBLISH_HINT,
            )
        options[dest] = [n for n in names if n not in negative]
        negations[dest] = negative
        flags[dest] = metavar is None
    if not positionals and not options:
        raise SluiceError(f"sluice.export cannot read the arguments of {recipe} from its --help", hint=PUBLISH_HINT)
    hints = _hints(func)
    params = []
    for p in signature.values():
        if p.name not in options and p.name not in positionals:
            continue  # not on the command line: the recipe's default applies
        flag = flags.get(p.name, False)
        convert = None if flag else _converter(p.name, hints.get(p.name, inspect.Parameter.empty))
        params.append(_Param(p.name, p.name in positionals, options.get(p.name, []), flag,
                             negations.get(p.name, []), convert, p.name in positionals and p.default is p.empty))
    order = {name: i for i, name in enumerate(positionals)}
    return sorted(params, key=lambda p: (not p.positional, order.get(p.name, 0)))


def declared_by_plac(func: Callable[..., Any]) -> bool:
    """Whether the recipe's declarations sit in its annotations (Prodigy up to 1.11)."""
    return any(isinstance(v, tuple) for v in (getattr(func, "__annotations__", {}) or {}).values())


def _usage(recipe: str, params: List[_Param]) -> str:
    words = [p.name if p.required else f"[{p.name}]" for p in params if p.positional]
    for p in params:
        if not p.positional:
            shown = "/".join(dict.fromkeys(p.options[:1] + [o for o in p.options if not o.startswith("--")]))
            words.append(shown + ("" if p.flag else " VALUE"))
    return f"{recipe} {' '.join(words)}"


def call_recipe(func: Callable[..., Any], recipe: str, argv: List[str], help_text: Optional[str] = None) -> Any:
    """Calls `func` with `argv` converted as Prodigy's command line would; returns its result."""
    params = _plac_params(func) if declared_by_plac(func) or help_text is None else _help_params(func, recipe, help_text)
    usage = _usage(recipe, params)
    by_option: Dict[str, _Param] = {}
    for p in params:
        for option in [*p.options, *p.negations]:
            by_option[option] = p

    def convert(p: _Param, value: str) -> Any:
        try:
            return p.convert(value) if p.convert else value
        except (TypeError, ValueError, OSError) as error:
            raise SluiceError(f"{recipe}: bad value {value!r} for {p.name}: {error}", hint=f"usage: {usage}") from None

    kwargs: Dict[str, Any] = {}
    values: List[str] = []
    tokens = iter(argv)
    for token in tokens:
        if not token.startswith("-") or token == "-" or token[1:2].isdigit() or token[1:2] == ".":
            values.append(token)
            continue
        option, eq, value = token.partition("=")
        p = by_option.get(option)
        if p is None:
            raise SluiceError(f"{recipe}: unknown option {option}", hint=f"usage: {usage}")
        if p.flag:
            kwargs[p.name] = option not in p.negations
            continue
        if not eq:
            value = next(tokens, None)
            if value is None:
                raise SluiceError(f"{recipe}: {option} needs a value", hint=f"usage: {usage}")
        kwargs[p.name] = convert(p, value)
    positional = [p for p in params if p.positional]
    if len(values) > len(positional):
        raise SluiceError(f"{recipe}: unexpected argument {values[len(positional)]!r}", hint=f"usage: {usage}")
    missing = [p.name for p in positional[len(values):] if p.required]
    if missing:
        raise SluiceError(f"{recipe}: missing {', '.join(missing)}", hint=f"usage: {usage}")
    for p, value in zip(positional, values):
        kwargs[p.name] = convert(p, value)
    return func(**kwargs)

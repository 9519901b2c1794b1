"""Calls a recipe function with arguments written as on Prodigy's command line.

`sluice.export ner.manual URL 'news blank:en ./news.jsonl --label A,B'` must call the named
recipe as Prodigy would. The recipe's parameters are read from its signature; their kind
(positional, option, flag), short name and converter from the plac-style annotations of
Prodigy's recipe decorator, `(help, kind, short, type)`, or else from type hints.
"""

import inspect
import typing
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from ._connectors import SluiceError


class _Param(NamedTuple):
    name: str
    kind: str  # positional | option | flag
    short: Optional[str]
    convert: Optional[Callable[[str], Any]]
    required: bool


def _split(value: str) -> List[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _from_hint(hint: Any) -> Optional[Callable[[str], Any]]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        hint = args[0]
    if hint in (int, float):
        return hint
    if hint is list or typing.get_origin(hint) in (list, List):
        return _split
    return None


def _params(func: Callable[..., Any]) -> List[_Param]:
    annotations = getattr(func, "__annotations__", {}) or {}
    params = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        note = annotations.get(p.name)
        has_default = p.default is not p.empty
        if isinstance(note, tuple):
            kind = (note[1] if len(note) > 1 else None) or "positional"
            short = note[2] if len(note) > 2 else None
            convert = note[3] if len(note) > 3 and callable(note[3]) and note[3] is not str else None
        else:
            kind = "flag" if note is bool or isinstance(p.default, bool) else "option" if has_default else "positional"
            short, convert = None, _from_hint(note)
        params.append(_Param(p.name, kind, short, convert, kind == "positional" and not has_default))
    return params


def _usage(recipe: str, params: List[_Param]) -> str:
    words = [p.name if p.required else f"[{p.name}]" for p in params if p.kind == "positional"]
    words += [f"--{p.name.replace('_', '-')}" + ("" if p.kind == "flag" else " VALUE") for p in params if p.kind != "positional"]
    return f"{recipe} {' '.join(words)}"


def call_recipe(func: Callable[..., Any], recipe: str, argv: List[str]) -> Any:
    params = _params(func)
    usage = _usage(recipe, params)
    flags: Dict[str, _Param] = {}
    for p in params:
        if p.kind != "positional":
            flags[f"--{p.name.replace('_', '-')}"] = flags[f"--{p.name}"] = p
            if p.short:
                flags[f"-{p.short}"] = p

    def convert(p: _Param, value: str) -> Any:
        try:
            return p.convert(value) if p.convert else value
        except (TypeError, ValueError) as error:
            raise SluiceError(f"{recipe}: bad value {value!r} for {p.name}: {error}", hint=f"usage: {usage}") from None

    kwargs: Dict[str, Any] = {}
    values: List[str] = []
    tokens = iter(argv)
    for token in tokens:
        if not token.startswith("-") or token == "-" or token[1:2].isdigit():
            values.append(token)
            continue
        flag, eq, value = token.partition("=")
        p = flags.get(flag)
        if p is None:
            raise SluiceError(f"{recipe}: unknown option {flag}", hint=f"usage: {usage}")
        if p.kind == "flag":
            kwargs[p.name] = True
            continue
        if not eq:
            value = next(tokens, None)
            if value is None:
                raise SluiceError(f"{recipe}: {flag} needs a value", hint=f"usage: {usage}")
        kwargs[p.name] = convert(p, value)
    positional = [p for p in params if p.kind == "positional"]
    if len(values) > len(positional):
        raise SluiceError(f"{recipe}: unexpected argument {values[len(positional)]!r}", hint=f"usage: {usage}")
    for p, value in zip(positional, values):
        kwargs[p.name] = convert(p, value)
    missing = [p.name for p in positional[len(values):] if p.required]
    if missing:
        raise SluiceError(f"{recipe}: missing {', '.join(missing)}", hint=f"usage: {usage}")
    return func(**kwargs)

"""How `sluice.export` reads the wrapped recipe's command-line arguments."""

from typing import List, Optional

import pytest
from prodigy_sluice import SluiceError
from prodigy_sluice._recipe_args import call_recipe


def split(value):
    return value.split("|")


def plac_style(dataset, source=None, label=None, limit=10, verbose=False):
    return dict(dataset=dataset, source=source, label=label, limit=limit, verbose=verbose)


plac_style.__annotations__ = {
    "dataset": ("Dataset", "positional", None, str),
    "source": ("Source", "positional", None, str),
    "label": ("Labels", "option", "l", split),
    "limit": ("Limit", "option", "n", int),
    "verbose": ("Verbose", "flag", "v", bool),
}


def hinted(dataset: str, label: Optional[List[str]] = None, ratio: float = 0.5, dry: bool = False):
    return dict(dataset=dataset, label=label, ratio=ratio, dry=dry)


def test_plac_annotations_give_kinds_short_names_and_converters():
    assert call_recipe(plac_style, "r", ["ds", "-", "-l", "A|B", "--limit=3", "-v"]) == {
        "dataset": "ds", "source": "-", "label": ["A", "B"], "limit": 3, "verbose": True,
    }
    assert call_recipe(plac_style, "r", ["ds"])["source"] is None


def test_type_hints_are_used_without_annotations():
    assert call_recipe(hinted, "h", ["ds", "--label", "A, B", "--ratio", "-0.25", "--dry"]) == {
        "dataset": "ds", "label": ["A", "B"], "ratio": -0.25, "dry": True,
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ds", "--lable", "A"], "r: unknown option --lable"),
        ([], "r: missing dataset"),
        (["ds", "src", "extra"], "r: unexpected argument 'extra'"),
        (["ds", "--limit", "many"], "r: bad value 'many' for limit"),
        (["ds", "--limit"], "r: --limit needs a value"),
    ],
)
def test_mistakes_are_named_with_the_usage(argv, message):
    with pytest.raises(SluiceError) as failure:
        call_recipe(plac_style, "r", argv)
    assert str(failure.value).startswith(message)
    assert "usage: r dataset [source] --label VALUE --limit VALUE --verbose" in str(failure.value)

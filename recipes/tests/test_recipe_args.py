"""How `sluice.export` reads and converts the wrapped recipe's command-line arguments: from plac
annotations (Prodigy up to 1.11), or from the recipe's `--help` and type hints (1.12+)."""

import argparse
import sys
from typing import List, Optional

import pytest
from conftest import STANDIN
from prodigy_sluice import SluiceError
from prodigy_sluice._recipe_args import call_recipe

sys.path.insert(0, str(STANDIN))  # the stand-in's spacy, for `Language`
from spacy.language import Language  # noqa: E402


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


def test_plac_annotations_give_kinds_short_names_and_converters():
    assert call_recipe(plac_style, "r", ["ds", "-", "-l", "A|B", "--limit=3", "-v"]) == {
        "dataset": "ds", "source": "-", "label": ["A", "B"], "limit": 3, "verbose": True,
    }
    assert call_recipe(plac_style, "r", ["ds"])["source"] is None


def pdf_like(
    dataset: str,
    nlp: Language,
    source: str,
    labels: Optional[List[str]] = None,
    n: int = 3,
    ratio: float = 0.5,
    hide_preview: bool = False,
    fetch: bool = True,
):
    return dict(dataset=dataset, nlp=nlp, source=source, labels=labels, n=n, ratio=ratio,
                hide_preview=hide_preview, fetch=fetch)


def radicli_help(declared):
    """The help a 1.12+ recipe prints: argparse with `[option, short]` per argument, as radicli
    adds them, and `--x, --no-x` for a flag that defaults to true."""
    parser = argparse.ArgumentParser(prog="prodigy pdf.like")
    for name, option, short, kind in declared:
        if option is None:
            parser.add_argument(name, help="(str)")
        elif kind == "flag":
            parser.add_argument(*[s for s in (option, short) if s], dest=name, action="store_true", help="(bool)")
        elif kind == "negatable":
            parser.add_argument(option, f"--no-{option[2:]}", dest=name, action="store_true", help="(bool)")
        else:
            parser.add_argument(*[s for s in (option, short) if s], dest=name, help="(x)")
    return parser.format_help()


HELP = radicli_help([
    ("dataset", None, None, None), ("nlp", None, None, None), ("source", None, None, None),
    ("labels", "--label", "-l", "option"), ("n", "--n", "-n", "option"), ("ratio", "--ratio", None, "option"),
    ("hide_preview", "--hide-preview", "-HP", "flag"), ("fetch", "--fetch", None, "negatable"),
])


def test_1_12_recipes_get_short_flags_from_help_and_objects_from_type_hints(tmp_path):
    got = call_recipe(pdf_like, "pdf.like", ["ds", "blank:de", "./pdfs", "-l", "A, B", "-HP", "--n=4",
                                             "--ratio", "-0.25", "--no-fetch"], HELP)
    assert isinstance(got.pop("nlp"), Language)
    assert got == {"dataset": "ds", "source": "./pdfs", "labels": ["A", "B"], "n": 4, "ratio": -0.25,
                   "hide_preview": True, "fetch": False}
    labels = tmp_path / "labels.txt"
    labels.write_text("PERSON\nORG\n\n")
    assert call_recipe(pdf_like, "pdf.like", ["ds", "blank:de", "x", "--label", str(labels)], HELP)["labels"] == [
        "PERSON", "ORG"]
    assert call_recipe(pdf_like, "pdf.like", ["ds", "blank:de", "x"], HELP)["fetch"] is True


def test_a_type_sluice_cannot_convert_as_prodigy_would_points_to_publish():
    class Custom:
        pass

    def odd(dataset: str, thing: Custom):
        return None

    with pytest.raises(SluiceError) as failure:
        call_recipe(odd, "odd", ["ds", "x"], radicli_help([("dataset", None, None, None), ("thing", None, None, None)]))
    assert failure.value.message.startswith("sluice.export cannot convert the argument thing")
    assert "sluice.publish" in failure.value.hint


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
    assert failure.value.message.startswith(message)
    assert failure.value.hint == "usage: r dataset [source] --label/-l VALUE --limit/-n VALUE --verbose/-v"


def test_a_pipeline_that_does_not_load_is_a_bad_value():
    with pytest.raises(SluiceError, match=r"pdf.like: bad value 'en_core_web_sm' for nlp: \[E050\]"):
        call_recipe(pdf_like, "pdf.like", ["ds", "en_core_web_sm", "x"], HELP)

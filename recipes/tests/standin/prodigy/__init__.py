"""A stand-in for the part of Prodigy that prodigy-sluice touches. It is not Prodigy and copies
none of it: Prodigy cannot be installed here, so this models its documented behaviour, as
unkindly as the real thing, from these sources:

  [docs-recipes]  prodi.gy/docs/custom-recipes (1.12+: "argument annotations, following the
                  radicli syntax", `Arg("--view-id", "-v", help=...)` with type hints; `--help`
                  shows the annotations; `-F` loads recipe files)
  [docs-api]      prodi.gy/docs/api-components (`@prodigy.recipe`, components, get_stream,
                  set_hashes), prodi.gy/docs/api-database (SQLite by default in the Prodigy home,
                  `connect()`, datasets and sessions), prodi.gy/docs/api-loaders (hashing)
  [radicli]       explosion/radicli `radicli/cli.py`, `radicli/util.py`: the decorator keeps the
                  `Arg`s in the CLI's registry and returns the function unchanged; bool -> flag,
                  a positional with a default is optional, options are `[option, short]` for
                  argparse; a converter registered for a type wins over the Arg's own
  [ann]           explosion/prodigy-ann (CI on Prodigy 1.14.11) `prodigy_ann/text.py`, `image.py`,
                  `util.py`: `ner_manual(dataset, spacy.blank(...), stream, label=[...])`,
                  `image_manual(dataset, source=stream, loader="images", label=..., remove_base64=...)`
                  imported from `prodigy.recipes.ner` / `prodigy.recipes.image`; `Stream.apply`,
                  `Stream.from_iterable`; plac-style tuples still accepted by the 1.12+ decorator
  [pdf]           explosion/prodigy-pdf (`prodigy>=1.17.1`) `prodigy_pdf/spans.py`: `nlp: Language`,
                  `Arg("--label", "-l")` on a parameter named `labels`, short flags such as `-HP`;
                  `from prodigy.core import Arg, recipe`; `connect()`, `db.add_examples`
  [hf]            explosion/prodigy-hf (CI on Prodigy 1.14.0): `db.get_dataset_examples(name)`,
                  `get_stream(source, rehash=True, dedup=True)`, `python -m prodigy RECIPE --help`
  [recipes]       explosion/prodigy-recipes: plac-style `(help, kind, short, type)` annotations
                  (<= 1.11); `tutorials/audio-with-transcript/recipe.py`: `remove_base64` puts
                  `path` back in place of a `data:` URI before the database
  [forum]         support.prodi.gy/t/1033 ("No tasks available"; the back end only learns of
                  missing answers when the process is stopped), /t/4657 (hashing, exclusion)
  [issue-20]      Sluice issue 20, facts from real exports: `on_exit` runs when the server stops
                  (Ctrl-C), not when the stream runs out, and the server keeps serving "No tasks
                  available" until then; `image.manual` fetches image URLs and inlines them unless
                  `--no-fetch`, and `--remove-base64` restores them from `path`; built-in recipes
                  hash a task when they load it, before adding fields; 1.12+ streams are `Stream`
                  objects with rehash, dedup and exclusion of what the dataset holds
  [design]        Sluice DESIGN.md section 4: the hash algorithm, reproduced on 10,628 of 10,629
                  real exported records

What it models (source in brackets):

- Versions: `PRODIGY_STANDIN_VERSION` (default 1.17). From 1.12 [docs-recipes, radicli]: recipes
  declare `Arg`s or plac tuples in the decorator and type hints on the function; the decorator
  keeps the declarations in a private registry and returns the function untouched, so its
  `__annotations__` are the type hints; there is no `prodigy.get_recipe`; arguments are
  converted from the type hints (`Language` loaded from a name, `blank:xx` as a blank pipeline,
  `List[str]` comma-separated or a label file, `bool` a flag, `int`, `float`, `Path`) before the
  function is called. Below 1.12 [recipes]: the decorator writes the plac tuples into
  `__annotations__`, `get_recipe(name)` exists, `get_stream` lives in
  `prodigy.components.loaders` and returns a plain generator, and the database has `get_dataset`.
- `python -m prodigy RECIPE ARGS [-F FILE]`, `python -m prodigy RECIPE --help` (an argparse help
  listing each option as `--long VALUE, -short VALUE`), `python -m prodigy db-out DATASET`.
- Recipes from `prodigy_recipes` entry points, `-F` files, and the built-ins `ner.manual`,
  `textcat.manual` and `image.manual` with the parameter names and flags of the docs [ann].
- `get_stream` [docs-api, hf, issue-20]: loaders from `prodigy_loaders` entry points, `-` for
  stdin, JSONL otherwise; hashes set on every task (recomputed with `rehash=True`); `dedup`
  drops repeated task hashes; a `Stream` with `apply` and `from_iterable` [ann].
- Hashes [design]: MurmurHash3 over `key=<json>` of the input keys, then the task keys; the whole
  task when none is present; `score rank model source pattern priority path _view_id
  _session_id _annotator_id answer` dropped at every depth.
- The server [issue-20, forum]: pulls the stream in batches of `batch_size` (10), leaves out
  tasks the dataset (and `exclude`) already holds by task hash (`exclude_by: "input"` by input
  hash), answers them as simulated annotators (sessions `<dataset>-<name>` from
  `STANDIN_SESSIONS`), calls `update`, then `before_db`, saves to the dataset and each session's
  dataset, prints "No tasks available" when the stream runs out and keeps serving until SIGINT or
  SIGTERM, and only then calls `on_exit(controller)`. `image.manual` fetches `http(s)` image URLs
  into `data:` URIs unless `--no-fetch`; `--remove-base64` puts `path` back before the database.
- The database [docs-api]: SQLite `prodigy.db` in `PRODIGY_HOME` (tables dataset, example, link;
  an example is linked to its dataset and its session dataset), `connect()`, `datasets`,
  `in`, `add_dataset`, `add_examples`, `get_dataset_examples` (1.12+) or `get_dataset`
  (below 1.12), `get_input_hashes`, `get_task_hashes`.

Test controls: STANDIN_ANSWERS (stop answering after this many; the server keeps serving),
STANDIN_SESSIONS (comma-separated annotator names), STANDIN_DELAY (seconds between batches).
"""

import os

from .util import set_hashes  # noqa: F401

__version__ = os.environ.get("PRODIGY_STANDIN_VERSION", "1.17.0")
VERSION = tuple(int(part) for part in __version__.split(".")[:2])
LEGACY = VERSION < (1, 12)

if LEGACY:
    from .core import get_recipe, recipe  # noqa: F401
else:
    from .core import Arg, recipe  # noqa: F401

"""python -m prodigy RECIPE ARGS... | python -m prodigy db-out DATASET

Environment: PRODIGY_STANDIN_DB (database folder, required), STANDIN_ANSWERS (stop after
this many answers, default: the whole stream), STANDIN_HOLD=1 (after answering, wait to be
interrupted instead of ending the session; Ctrl-C then ends the process without on_exit).
"""

import argparse
import inspect
import json
import os
import sys
import time
from itertools import islice
from pathlib import Path

import prodigy


def _database(dataset):
    return Path(os.environ["PRODIGY_STANDIN_DB"]) / f"{dataset}.jsonl"


def _parse(name, func, argv):
    parser = argparse.ArgumentParser(prog=f"prodigy {name}")
    for param in inspect.signature(func).parameters.values():
        help_, kind, short, convert = (tuple(func.__annotations__.get(param.name, ())) + (None,) * 4)[:4]
        optional = param.default is not param.empty
        if kind == "flag":
            names = [f"--{param.name.replace('_', '-')}"] + ([f"-{short}"] if short else [])
            parser.add_argument(*names, dest=param.name, action="store_true")
        elif kind == "option":
            names = [f"--{param.name.replace('_', '-')}"] + ([f"-{short}"] if short else [])
            parser.add_argument(*names, dest=param.name, type=convert or str, default=param.default)
        else:
            parser.add_argument(param.name, type=convert or str, nargs="?" if optional else None,
                                default=param.default if optional else None)
    return vars(parser.parse_args(argv))


def _answer(eg, index, view_id, dataset):
    eg = dict(eg)
    eg["answer"] = "reject" if index % 5 == 4 else "ignore" if index % 7 == 6 else "accept"
    if index % 11 == 10:
        eg["flagged"] = True
    eg["_view_id"] = view_id
    eg["_session_id"] = eg["_annotator_id"] = f"{dataset}-standin"
    eg["_timestamp"] = int(time.time())
    return eg


def serve(components):
    dataset = components["dataset"]
    if components.get("on_load"):
        components["on_load"](components)
    stream = iter(components["stream"])
    batch_size = components.get("config", {}).get("batch_size", 10)
    limit = int(os.environ.get("STANDIN_ANSWERS", sys.maxsize))
    answered = 0
    while answered < limit:
        batch = list(islice(stream, min(batch_size, limit - answered)))
        if not batch:
            break
        answers = [_answer(eg, answered + i, components["view_id"], dataset) for i, eg in enumerate(batch)]
        if components.get("update"):
            components["update"](answers)
        if components.get("before_db"):
            answers = components["before_db"](answers)
        with open(_database(dataset), "a", encoding="utf-8") as db:
            db.writelines(json.dumps(eg) + "\n" for eg in answers)
        answered += len(batch)
        print(f"saved {answered}", flush=True)
    if os.environ.get("STANDIN_HOLD"):
        print("holding", flush=True)
        while True:
            time.sleep(3600)
    if components.get("on_exit"):
        components["on_exit"](components)


def main(argv):
    if argv[:1] == ["db-out"]:
        sys.stdout.write(_database(argv[1]).read_text(encoding="utf-8"))
        return 0
    func = prodigy.get_recipe(argv[0])
    if func is None:
        print(f"Can't find recipe: {argv[0]}", file=sys.stderr)
        return 1
    serve(func(**_parse(argv[0], func, argv[1:])))
    return 0


sys.exit(main(sys.argv[1:]))

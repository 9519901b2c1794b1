"""python -m prodigy RECIPE ARGS... [-F FILE] | python -m prodigy db-out DATASET

Runs a recipe as Prodigy's command line does and, when it returns components, serves them the
way the server does (see the package doc for what is modelled and its sources).
"""

import json
import os
import signal
import sys
import time
from typing import Any, Dict, List

from .components.db import connect
from .core import find_recipe, load_file, parse_recipe_args


class Controller:
    """What `on_load` and `on_exit` receive."""

    def __init__(self, components: Dict[str, Any], db: Any):
        self.components = components
        self.dataset = components.get("dataset")
        self.config = components.get("config") or {}
        self.db = db
        self.total_annotated = 0


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _answer(eg: Dict[str, Any], index: int, view_id: str, session: str) -> Dict[str, Any]:
    eg = dict(eg)
    eg["answer"] = "reject" if index % 5 == 4 else "ignore" if index % 7 == 6 else "accept"
    if index % 11 == 10:
        eg["flagged"] = True
    eg["_view_id"] = view_id
    eg["_session_id"] = eg["_annotator_id"] = session
    eg["_timestamp"] = int(time.time())
    return eg


def _exclude(components: Dict[str, Any], db: Any) -> set:
    """What the dataset (and `exclude`) already holds, by task hash or, with exclude_by input, input hash."""
    names = [components["dataset"], *(components.get("exclude") or [])]
    by_input = (components.get("config") or {}).get("exclude_by") == "input"
    return db.get_input_hashes(*names) if by_input else db.get_task_hashes(*names)


def serve(components: Dict[str, Any]) -> None:
    db = connect()
    dataset = components["dataset"]
    ctrl = Controller(components, db)
    db.add_dataset(dataset)
    sessions = [f"{dataset}-{name}" for name in os.environ.get("STANDIN_SESSIONS", "standin").split(",")]
    for session in sessions:
        db.add_dataset(session, session=True)
    by_input = ctrl.config.get("exclude_by") == "input"
    key = "_input_hash" if by_input else "_task_hash"
    seen = _exclude(components, db)
    limit = int(os.environ.get("STANDIN_ANSWERS", sys.maxsize))
    delay = float(os.environ.get("STANDIN_DELAY", "0"))
    batch_size = ctrl.config.get("batch_size", 10)
    # Like the web server, it stops on SIGINT (Ctrl-C) and SIGTERM alike.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        if components.get("on_load"):
            components["on_load"](ctrl)
        stream = iter(components["stream"])
        exhausted = False
        while ctrl.total_annotated < limit and not exhausted:
            batch: List[Dict[str, Any]] = []
            while len(batch) < min(batch_size, limit - ctrl.total_annotated):
                eg = next(stream, None)
                if eg is None:
                    exhausted = True
                    break
                if eg.get(key) not in seen:
                    seen.add(eg.get(key))
                    batch.append(eg)
            if not batch:
                break
            session = sessions[(ctrl.total_annotated // batch_size) % len(sessions)]
            answers = [_answer(eg, ctrl.total_annotated + i, components["view_id"], session)
                       for i, eg in enumerate(batch)]
            if components.get("update"):
                components["update"](answers)
            if components.get("before_db"):
                answers = components["before_db"](answers)
            db.add_examples(answers, datasets=[dataset, session])
            ctrl.total_annotated += len(batch)
            print(f"saved {ctrl.total_annotated}", flush=True)
            if delay:
                time.sleep(delay)
        if exhausted:
            print("No tasks available", flush=True)
        print("serving until Ctrl-C", flush=True)
        # Short sleeps, as a server's event loop wakes on a signal whichever thread the kernel
        # gave it to: a long sleep in the main thread misses one taken by the export's thread.
        while True:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    if components.get("on_exit"):
        components["on_exit"](ctrl)


def main(argv: List[str]) -> int:
    if argv[:1] == ["db-out"]:
        db = connect()
        examples = db.get_dataset(argv[1]) if hasattr(db, "get_dataset") else db.get_dataset_examples(argv[1])
        sys.stdout.write("".join(json.dumps(eg) + "\n" for eg in examples))
        return 0
    files = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-F"]
    rest = [arg for i, arg in enumerate(argv) if arg != "-F" and (i == 0 or argv[i - 1] != "-F")]
    for path in files:
        load_file(path)
    found = find_recipe(rest[0]) if rest else None
    if found is None:
        print(f"Can't find recipe or command '{rest[0] if rest else ''}'", file=sys.stderr)
        return 1
    components = found.func(**parse_recipe_args(found, rest[1:]))
    if isinstance(components, dict):
        serve(components)
    return 0


sys.exit(main(sys.argv[1:]))

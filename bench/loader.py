"""Scenario 9: the Python loader against the plain pipe, as a recipe reads tasks.

    python3 bench/loader.py pipe <cli> <file>     node <cli> <file> | (this process reads stdin)
    python3 bench/loader.py loader <file>         prodigy_sluice.loader.load(<file>), the CLI
                                                  found through SLUICE_BIN_DIR

Both read every task as Prodigy's JSONL loader does (one json.loads a line) and print
{"tasks": n} on stderr.
"""

import json
import sys


def main() -> None:
    mode = sys.argv[1]
    tasks = 0
    if mode == "pipe":
        for line in sys.stdin.buffer:
            if json.loads(line):
                tasks += 1
    else:
        from prodigy_sluice.loader import load

        for task in load(sys.argv[2]):
            if task:
                tasks += 1
    print(json.dumps({"tasks": tasks}), file=sys.stderr)


main()

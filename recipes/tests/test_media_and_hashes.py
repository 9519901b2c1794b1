"""What Prodigy does with Sluice tasks: `image.manual` fetches proxied images into base64 and
`--remove-base64` stores the task's `path` instead; Prodigy's own rehash of a Sluice task gives
the hashes Sluice set, and those hold when a file is touched."""

import json
import os
import subprocess
import sys

from conftest import PNG, STANDIN, db_out, prodigy, serve_and_stop, write_jsonl

sys.path.insert(0, str(STANDIN))
from prodigy.util import set_hashes  # noqa: E402  the stand-in's port of Prodigy's hashing


def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "dent.png").write_bytes(PNG)
    (folder / "scratch.png").write_bytes(PNG[:-1] + b"\x83")  # other bytes, other image
    return folder


def test_image_manual_remove_base64_keeps_path_and_drops_bytes(venv, env, project, tmp_path):
    folder = photos(tmp_path)
    run = prodigy(venv, env, project, "image.manual", "defects", f"{folder}?media-port=0", "-lo", "sluice",
                  "-l", "DENT", "--remove-base64")
    _, err = serve_and_stop(run)
    assert run.returncode == 0, err
    saved = db_out(venv, env, project, "defects")
    assert sorted(eg["image"] for eg in saved) == sorted((folder / name).as_uri() for name in ("dent.png", "scratch.png"))
    assert all(eg["image"] == eg["path"] for eg in saved)
    assert "base64" not in json.dumps(saved)


def test_image_manual_stores_the_bytes_without_it_and_the_url_with_no_fetch(venv, env, project, tmp_path):
    folder = photos(tmp_path)
    fetched = prodigy(venv, env, project, "image.manual", "inlined", f"{folder}?media-port=0", "-lo", "sluice")
    serve_and_stop(fetched)
    assert all(eg["image"].startswith("data:image/png;base64,") for eg in db_out(venv, env, project, "inlined"))
    linked = prodigy(venv, env, project, "image.manual", "linked", f"{folder}?media-port=0", "-lo", "sluice",
                     "--no-fetch")
    serve_and_stop(linked)
    assert all(eg["image"].startswith("http://127.0.0.1:") for eg in db_out(venv, env, project, "linked"))


def sluice_tasks(project, folder, *flags):
    run = subprocess.run([str(project / "node_modules/.bin/fs-source"), str(folder), "--quiet", *flags],
                         capture_output=True, text=True, check=True)
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_prodigy_rehashes_sluice_tasks_to_the_hashes_sluice_set(project, tmp_path):
    data = tmp_path / "data"
    write_jsonl(data / "tickets.jsonl", [
        {"text": "Refund not received", "meta": {"priority": 2, "weight": 1.0}},
        {"text": "App crashes", "spans": [{"start": 0, "end": 3, "label": "PRODUCT"}]},
        {"text": "Box", "label": "BUG", "meta": {"points": [[10.0, 20.0], [1e16, -0.0]]}},
    ])
    (data / "table.csv").write_text("text,label,author\nPrinter jams,HARDWARE,ann\n")
    (data / "notes.txt").write_text("first line\nsecond line\n")
    (data / "pixel.png").write_bytes(PNG)
    tasks = sluice_tasks(project, data, "--media", "inline")
    assert len(tasks) == 7
    for task in tasks:
        rehashed = set_hashes(json.loads(json.dumps(task)), overwrite=True)  # what rehash=True does
        assert (rehashed["_input_hash"], rehashed["_task_hash"]) == (task["_input_hash"], task["_task_hash"]), task


def test_a_touched_file_keeps_its_hashes_in_prodigy_too(project, tmp_path):
    data = tmp_path / "data"
    write_jsonl(data / "tickets.jsonl", [{"text": "Refund not received"}, {"text": "App crashes"}])
    before = sluice_tasks(project, data)
    os.utime(data / "tickets.jsonl", (1_800_000_000, 1_800_000_000))
    after = sluice_tasks(project, data)
    assert [t["sluice"]["source"]["version"] for t in after] != [t["sluice"]["source"]["version"] for t in before]
    rehash = [set_hashes(t, overwrite=True)["_task_hash"] for t in after]
    assert rehash == [t["_task_hash"] for t in before]

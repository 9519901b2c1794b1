"""Continuous export through `prodigy sluice.export`, run by the stand-in Prodigy in a
virtualenv where prodigy-sluice was installed by pip, writing through the real sink CLI."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import PNG, alive, children, read_jsonl, wait_gone, write_jsonl

NEWS = [{"text": f"Story {i}: Ada Lovelace met Charles Babbage in London."} for i in range(25)]


def prodigy(venv, env, cwd, *args, **popen):
    return subprocess.Popen([str(venv), "-m", "prodigy", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def export_records(folder):
    """Records of a Sluice export, in part order, as a reader of the manifest sees them."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    records = [r for part in manifest["parts"] for r in read_jsonl(Path(folder) / part["key"])]
    return manifest, records


def strip_time(records):
    return [{k: v for k, v in r.items() if k != "_timestamp"} for r in records]


@pytest.fixture
def news(tmp_path):
    return write_jsonl(tmp_path / "src" / "news.jsonl", NEWS)


def test_the_entry_points_are_registered_by_pip_install(venv):
    out = subprocess.run(
        [str(venv), "-c", "from importlib.metadata import entry_points as e; "
         "print([(x.name, x.value) for g in ('prodigy_loaders', 'prodigy_recipes') for x in e(group=g)])"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "('sluice', 'prodigy_sluice.loader:load')" in out
    assert "('sluice.export', 'prodigy_sluice.recipes:export')" in out


def test_the_live_export_equals_db_out_through_the_sink(venv, env, project, tmp_path, news):
    live = tmp_path / "live"
    args = f"news blank:en {news} --loader sluice --label PERSON,ORG"
    run = prodigy(venv, env, project, "sluice.export", "ner.manual", f"{live}/{{dataset}}/?max-part-records=10", args)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert out.splitlines()[-1] == "saved 25"

    db_out = prodigy(venv, env, project, "db-out", "news").communicate(timeout=60)[0]
    batch = subprocess.run(
        [str(project / "node_modules/.bin/fs-sink"), str(tmp_path / "batch"), "--dataset", "news",
         "--max-part-records", "10", "--quiet"],
        input=db_out, capture_output=True, text=True,
    )
    assert batch.returncode == 0, batch.stderr
    live_manifest, live_records = export_records(live / "news")
    batch_manifest, batch_records = export_records(tmp_path / "batch")
    assert live_records == batch_records
    assert len(live_records) == 25 and [r["text"] for r in live_records] == [r["text"] for r in NEWS]
    assert live_manifest["counts"] == batch_manifest["counts"]
    assert [p["records"] for p in live_manifest["parts"]] == [10, 10, 5]
    assert live_manifest["dataset"] == "news"


def test_ctrl_c_loses_nothing_that_was_saved(venv, env, project, tmp_path, news):
    live = tmp_path / "live"
    run = prodigy(venv, {**env, "STANDIN_ANSWERS": "30", "STANDIN_HOLD": "1"}, project, "sluice.export",
                  "ner.manual", f"{live}/", f"news blank:en {news} --loader sluice", start_new_session=True)
    for line in run.stdout:
        if line.strip() == "holding":
            break
    loader_cli = [pid for pid in children(run.pid) if alive(pid)]
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
    run.communicate(timeout=60)
    _, records = export_records(live)
    db = read_jsonl(Path(env["PRODIGY_STANDIN_DB"]) / "news.jsonl")
    assert len(db) == 25  # the whole stream was answered before the hold
    assert records == db
    assert all(wait_gone(pid) for pid in loader_cli)


def test_a_killed_session_is_published_by_the_next_one(venv, env, project, tmp_path, news):
    live = tmp_path / "live"
    url = f"{live}/"
    args = f"news blank:en {news} --loader sluice"
    hold = {**env, "STANDIN_ANSWERS": "20", "STANDIN_HOLD": "1"}
    run = prodigy(venv, hold, project, "sluice.export", "ner.manual", url, args, "--interval", "3600",
                  start_new_session=True)
    for line in run.stdout:
        if line.strip() == "holding":
            break
    os.killpg(run.pid, signal.SIGKILL)  # no on_exit, no atexit
    run.wait()
    assert not (live / "manifest.json").exists()
    journal = list(Path(env["SLUICE_JOURNAL_DIR"]).glob("news-*.jsonl"))
    assert [len(read_jsonl(j)) for j in journal] == [20]

    again = prodigy(venv, {**env, "STANDIN_ANSWERS": "0"}, project, "sluice.export", "ner.manual", url, args)
    assert again.wait(timeout=60) == 0
    _, records = export_records(live)
    assert strip_time(records) == strip_time(read_jsonl(Path(env["PRODIGY_STANDIN_DB"]) / "news.jsonl"))


def test_strip_media_keeps_base64_out_of_the_database(venv, env, project, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(PNG)
    source = f"{images}?media=inline"
    run = prodigy(venv, env, project, "sluice.export", "image.manual", f"{tmp_path / 'live'}/",
                  f"photos '{source}' --loader sluice --label DEFECT", "--strip-media")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    [saved] = read_jsonl(Path(env["PRODIGY_STANDIN_DB"]) / "photos.jsonl")
    assert saved["image"] == (images / "a.png").as_uri()
    _, [exported] = export_records(tmp_path / "live")
    assert exported["image"] == saved["image"]
    inline = subprocess.run(
        [str(project / "node_modules/.bin/fs-source"), str(images), "--media", "inline", "--quiet"],
        capture_output=True, text=True,
    ).stdout
    task = json.loads(inline)
    assert task["image"].startswith("data:image/png;base64,")
    assert saved["_input_hash"] == task["_input_hash"]  # still matches the task it answered


def test_a_failing_sink_warns_and_keeps_the_journal(venv, env, project, tmp_path, news):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export folder should be\n")
    run = prodigy(venv, env, project, "sluice.export", "ner.manual", f"{blocker}/live/",
                  f"news blank:en {news} --loader sluice")
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0
    assert "sluice: live export failed, retrying: fs-sink: error:" in err
    assert "the next session with the same dataset and URL publishes it" in err
    [journal] = Path(env["SLUICE_JOURNAL_DIR"]).glob("news-*.jsonl")
    assert len(read_jsonl(journal)) == 25


def test_a_typo_in_the_recipe_arguments_is_named(venv, env, project, news):
    run = prodigy(venv, env, project, "sluice.export", "ner.manual", "/tmp/unused/", f"news blank:en {news} --labl A")
    _, err = run.communicate(timeout=60)
    assert run.returncode != 0
    assert "ner.manual: unknown option --labl" in err
    assert "usage: ner.manual dataset spacy_model source --loader VALUE --label VALUE" in err

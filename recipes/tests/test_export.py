"""Continuous export through `prodigy sluice.export`, run by the stand-in Prodigy (1.12+ unless
said otherwise) in a virtualenv where prodigy-sluice was installed by pip, writing through the
real sink CLI. The stand-in serves until Ctrl-C, and only then calls `on_exit`, as Prodigy does."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import (PNG, alive, children, ctrl_c, db_out, export_records, prodigy, read_jsonl, serve_and_stop,
                      wait_for, wait_gone, write_jsonl)

NEWS = [{"text": f"Story {i}: Ada Lovelace met Charles Babbage in London."} for i in range(25)]


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
    assert "('sluice.publish', 'prodigy_sluice.recipes:publish_recipe')" in out


@pytest.mark.parametrize(
    ("version", "args"),
    [
        # The README's example as written, on Prodigy 1.12+: `nlp: Language` loaded from its name.
        ("1.17.0", "news blank:en {news} --loader sluice --label PERSON,ORG"),
        # Short flags, which 1.12+ declares with `Arg("--label", "-l")` out of the function's sight.
        ("1.17.0", "news blank:en {news} -lo sluice -l PERSON,ORG"),
        # Prodigy up to 1.11: plac annotations, the pipeline passed by name.
        ("1.11.0", "news blank:en {news} -lo sluice -l PERSON,ORG"),
    ],
)
def test_the_live_export_equals_db_out_through_the_sink(venv, env, project, tmp_path, news, version, args):
    live = tmp_path / "live"
    env = {**env, "PRODIGY_STANDIN_VERSION": version}
    run = prodigy(venv, env, project, "sluice.export", "ner.manual", f"{live}/{{dataset}}/?max-part-records=10",
                  args.format(news=news))
    out, err = serve_and_stop(run, timeout=120)
    assert run.returncode == 0, err
    assert "saved 25" in out

    db = db_out(venv, env, project, "news")
    batch = subprocess.run(
        [str(project / "node_modules/.bin/fs-sink"), str(tmp_path / "batch"), "--dataset", "news",
         "--max-part-records", "10", "--quiet"],
        input="".join(json.dumps(eg) + "\n" for eg in db), capture_output=True, text=True,
    )
    assert batch.returncode == 0, batch.stderr
    live_manifest, live_records = export_records(live / "news")
    batch_manifest, batch_records = export_records(tmp_path / "batch")
    assert live_records == batch_records
    assert len(live_records) == 25 and [r["text"] for r in live_records] == [r["text"] for r in NEWS]
    assert all(r["tokens"][0]["text"] == "Story" for r in live_records)  # the pipeline tokenized them
    assert live_manifest["counts"] == batch_manifest["counts"]
    assert [p["records"] for p in live_manifest["parts"]] == [10, 10, 5]
    assert live_manifest["dataset"] == "news"


def test_ctrl_c_mid_session_loses_nothing_that_was_saved(venv, env, project, tmp_path, news):
    live = tmp_path / "live"
    run = prodigy(venv, {**env, "STANDIN_DELAY": "0.3"}, project, "sluice.export", "ner.manual", f"{live}/",
                  f"news blank:en {news} -lo sluice")
    wait_for(run, "saved 10")
    loader_cli = [pid for pid in children(run.pid) if alive(pid)]
    _, err = ctrl_c(run)  # while annotators are still at it
    assert run.returncode == 0, err
    _, records = export_records(live)
    db = db_out(venv, env, project, "news")
    assert 10 <= len(db) < 25
    assert records == db
    assert all(wait_gone(pid) for pid in loader_cli)


def test_a_killed_session_is_published_by_the_next_one(venv, env, project, tmp_path, news):
    live = tmp_path / "live"
    url = f"{live}/"
    args = f"news blank:en {news} --loader sluice"
    run = prodigy(venv, {**env, "STANDIN_ANSWERS": "20"}, project, "sluice.export", "ner.manual", url, args,
                  "--interval", "3600")
    wait_for(run, "serving until Ctrl-C")
    os.killpg(run.pid, signal.SIGKILL)  # no on_exit, no atexit
    run.wait()
    assert not (live / "manifest.json").exists()
    journal = list(Path(env["SLUICE_JOURNAL_DIR"]).glob("news-*.jsonl"))
    assert [len(read_jsonl(j)) for j in journal] == [20]

    again = prodigy(venv, {**env, "STANDIN_ANSWERS": "0"}, project, "sluice.export", "ner.manual", url, args)
    _, err = serve_and_stop(again)
    assert again.returncode == 0, err
    _, records = export_records(live)
    assert strip_time(records) == strip_time(db_out(venv, env, project, "news"))


def test_strip_media_keeps_base64_out_of_the_database(venv, env, project, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(PNG)
    source = f"{images}?media=inline"
    run = prodigy(venv, env, project, "sluice.export", "image.manual", f"{tmp_path / 'live'}/",
                  f"photos '{source}' --loader sluice --label DEFECT", "--strip-media")
    _, err = serve_and_stop(run)
    assert run.returncode == 0, err
    [saved] = db_out(venv, env, project, "photos")
    assert saved["image"] == saved["path"] == (images / "a.png").as_uri()
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
    _, err = serve_and_stop(run, timeout=120)
    assert run.returncode == 0
    assert "sluice: live export failed, retrying: fs-sink: error:" in err
    assert "the next session with the same dataset and URL publishes it" in err
    [journal] = Path(env["SLUICE_JOURNAL_DIR"]).glob("news-*.jsonl")
    assert len(read_jsonl(journal)) == 25


def test_a_typo_in_the_recipe_arguments_is_named(venv, env, project, news):
    run = prodigy(venv, env, project, "sluice.export", "ner.manual", "/tmp/unused/", f"news blank:en {news} --labl A")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert err.splitlines() == [
        "sluice.export: error: ner.manual: unknown option --labl",
        "sluice.export: hint: usage: ner.manual dataset nlp source --loader/-lo VALUE --label/-l VALUE "
        "--exclude/-e VALUE --highlight-chars/-C",
    ]


def test_a_pipeline_that_cannot_load_is_one_line(venv, env, project, news):
    run = prodigy(venv, env, project, "sluice.export", "ner.manual", "/tmp/unused/", f"news en_core_web_sm {news}")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert err.startswith("sluice.export: error: ner.manual: bad value 'en_core_web_sm' for nlp: [E050]")
    assert "Traceback" not in err


def test_a_recipe_it_cannot_find_points_to_publish(venv, env, project):
    run = prodigy(venv, env, project, "sluice.export", "my.custom", "/tmp/unused/", "news ./x.jsonl")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert err.splitlines() == [
        "sluice.export: error: sluice.export cannot find the recipe 'my.custom' to wrap",
        "sluice.export: hint: run `prodigy sluice.publish DATASET SINK_URL --every 60` beside the recipe "
        "instead: it wraps nothing",
    ]

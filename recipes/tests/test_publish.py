"""`prodigy sluice.publish DATASET URL [--every S]`: the dataset, read through Prodigy's database
API while annotators work in another process, exported through the real sink CLI."""

import json
import re
import subprocess

import pytest
from conftest import ctrl_c, db_out, export_records, prodigy, serve_and_stop, wait_for, write_jsonl

NEWS = [{"text": f"Item {i}: Grace Hopper joined Remington Rand."} for i in range(60)]


def published(err):
    return [int(n) for n in re.findall(r"sluice: published (\d+) answers", err)]


@pytest.fixture
def news(tmp_path):
    return write_jsonl(tmp_path / "src" / "news.jsonl", NEWS)


def annotate(venv, env, project, news, **controls):
    """A ner.manual session; its simulated annotators answer as controlled."""
    return prodigy(venv, {**env, **controls}, project, "ner.manual", "news", "blank:en", str(news))


def test_publishes_a_growing_dataset_until_ctrl_c(venv, env, project, tmp_path, news):
    server = annotate(venv, env, project, news, STANDIN_DELAY="0.4", STANDIN_SESSIONS="alice,bob")
    wait_for(server, "saved 10")
    out = tmp_path / "exports"
    publisher = prodigy(venv, env, project, "sluice.publish", "news", f"{out}/{{dataset}}/?max-part-records=20",
                        "--every", "0.3")
    wait_for(server, "serving until Ctrl-C")  # all 60 answered, by two annotators
    _, server_err = ctrl_c(server)
    assert server.returncode == 0, server_err
    subprocess.run(["sleep", "1.5"], check=True)  # the next interval picks up the last answers
    _, err = ctrl_c(publisher)
    assert publisher.returncode == 0, err

    counts = published(err)
    assert counts == sorted(counts) and counts[-1] == 60
    assert any(n < 60 for n in counts)  # it published while the dataset grew
    assert len(counts) == len(set(counts))  # nothing published twice: unchanged data is skipped
    assert "sluice: publishing what is left" in err
    manifest, records = export_records(out / "news")
    assert records == db_out(venv, env, project, "news")
    assert {r["_session_id"] for r in records} == {"news-alice", "news-bob"}
    assert [p["records"] for p in manifest["parts"]] == [20, 20, 20]


def test_once_and_again_writes_only_what_changed(venv, env, project, tmp_path, news):
    first = annotate(venv, env, project, news, STANDIN_ANSWERS="40")
    serve_and_stop(first)
    out = tmp_path / "exports"
    url = f"{out}/?max-part-records=20"

    def run():
        done = prodigy(venv, env, project, "sluice.publish", "news", url)
        _, err = done.communicate(timeout=60)
        assert done.returncode == 0, err
        return err

    def stamps():
        # Parts by their names in the manifest (stored under keys with the run's tag).
        manifest = json.loads((out / "manifest.json").read_text())
        parts = {p["name"]: (out / p["key"]).stat().st_mtime_ns for p in manifest["parts"]}
        return {**parts, "manifest.json": (out / "manifest.json").stat().st_mtime_ns}

    assert "sluice: published 40 answers of news" in run()
    before = stamps()
    run()
    assert stamps() == before  # the same dataset: the sink wrote nothing
    second = annotate(venv, env, project, news)  # answers the 20 the dataset does not hold
    out_text, _ = serve_and_stop(second)
    assert "saved 20" in out_text
    assert "sluice: published 60 answers of news" in run()
    after = stamps()
    assert after["part-00000.jsonl"] == before["part-00000.jsonl"]
    assert after["part-00001.jsonl"] == before["part-00001.jsonl"]
    assert after["manifest.json"] != before["manifest.json"]
    assert "part-00002.jsonl" in after


def test_works_on_prodigy_before_1_12(venv, env, project, tmp_path, news):
    legacy = {**env, "PRODIGY_STANDIN_VERSION": "1.11.0"}
    serve_and_stop(annotate(venv, legacy, project, news, STANDIN_ANSWERS="15"))
    run = prodigy(venv, legacy, project, "sluice.publish", "news", str(tmp_path / "out"))
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    _, records = export_records(tmp_path / "out")
    assert records == db_out(venv, legacy, project, "news")


def test_an_unknown_dataset_is_one_line_and_exit_1(venv, env, project, tmp_path):
    run = prodigy(venv, env, project, "sluice.publish", "nope", str(tmp_path / "out"))
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert err.splitlines() == [
        "sluice.publish: error: no dataset 'nope' in the Prodigy database",
        "sluice.publish: hint: check the name with `prodigy stats -l`, and that PRODIGY_HOME points where "
        "Prodigy saves",
    ]


def test_a_failing_sink_fails_the_last_publish_with_its_error(venv, env, project, tmp_path, news):
    serve_and_stop(annotate(venv, env, project, news, STANDIN_ANSWERS="5"))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export folder should be\n")
    run = prodigy(venv, env, project, "sluice.publish", "news", f"{blocker}/out/")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1
    [line, *_] = err.splitlines()
    assert line.startswith("sluice.publish: error: fs-sink: error: ")
    assert "Traceback" not in err

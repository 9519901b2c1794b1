"""The `sluice` loader, driven the way Prodigy drives a loader: call it with the source
string, then pull tasks from the iterator as the web app asks for batches."""

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from itertools import islice

import pytest
from conftest import PNG, RECIPES, REPO, alive, children, wait_gone, write_jsonl
import prodigy_sluice
from prodigy_sluice import CLI_VERSION, SluiceError, load


@pytest.fixture(autouse=True)
def in_project(project, monkeypatch):
    monkeypatch.chdir(project)  # the CLIs are found in ./node_modules/.bin
    monkeypatch.delenv("SLUICE_BIN_DIR", raising=False)


def node_children():
    return [pid for pid in children(os.getpid()) if alive(pid)]


def test_streams_a_folder_with_flags_from_the_query_string(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "alpha"}, {"text": "beta"}])
    write_jsonl(tmp_path / "b.jsonl", [{"text": "gamma"}])
    write_jsonl(tmp_path / "skip.jsonl", [{"text": "skipped"}])
    tasks = list(load(f"{tmp_path}?include=[ab].jsonl&order=listing"))
    assert [t["text"] for t in tasks] == ["alpha", "beta", "gamma"]
    assert tasks[0]["meta"]["source"] == (tmp_path / "a.jsonl").as_uri()
    assert all(isinstance(t["_input_hash"], int) and isinstance(t["_task_hash"], int) for t in tasks)
    assert node_children() == []  # the CLI exited and was reaped


def test_is_lazy_and_stopping_early_terminates_the_cli(tmp_path):
    write_jsonl(tmp_path / "big.jsonl", ({"text": f"line {i} " + "x" * 200} for i in range(200_000)))
    started = time.monotonic()
    stream = load(str(tmp_path))
    first = list(islice(stream, 5))
    assert time.monotonic() - started < 10
    assert [t["sluice"]["source"]["line"] for t in first] == [1, 2, 3, 4, 5]
    [pid] = node_children()  # still running: backpressure holds it a little ahead of us
    stream.close()  # what happens when Prodigy stops reading
    assert not alive(pid)  # terminated and reaped: no orphan, no zombie


def test_an_abandoned_stream_is_cleaned_up_by_garbage_collection(tmp_path):
    write_jsonl(tmp_path / "big.jsonl", ({"text": f"line {i}"} for i in range(200_000)))
    stream = load(str(tmp_path))
    next(stream)
    [pid] = node_children()
    del stream
    gc.collect()
    assert wait_gone(pid)


def test_a_failing_connector_raises_its_one_line_error(tmp_path):
    stream = load(str(tmp_path / "missing"))
    with pytest.raises(SluiceError) as failure:
        next(stream)
    message = str(failure.value)
    assert "fs-source: error:" in message and "missing" in message
    assert "\n" not in message and "    at " not in message
    assert failure.value.exit_code == 1
    assert node_children() == []


def test_malformed_output_names_the_line(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "fs-source"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'{"text": "fine"}\'\necho \'{"text": "cut\'\n')
    fake.chmod(0o755)
    monkeypatch.setenv("SLUICE_BIN_DIR", str(fake.parent))
    stream = load(str(tmp_path))
    assert next(stream) == {"text": "fine"}
    with pytest.raises(SluiceError, match=r"line 2 of the connector's output is not JSON"):
        next(stream)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/data", "no Sluice connector for ftp:// URLs"),
        ("s3://bucket/p?in clude=x", "is not a flag name"),
    ],
)
def test_bad_urls_fail_when_the_recipe_starts(url, message):
    with pytest.raises(SluiceError, match=message):
        load(url)


def test_a_configured_bin_dir_without_the_cli_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SLUICE_BIN_DIR", str(tmp_path))
    with pytest.raises(SluiceError, match=r"SLUICE_BIN_DIR=.* has no s3-source"):
        load("s3://bucket/prefix")


def test_reads_s3_through_the_s3_connector(s3, monkeypatch):
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    tasks = list(load("s3://sluice/tickets/?include=*.jsonl"))
    assert sorted(t["text"] for t in tasks) == [f"ticket {i}" for i in range(5)]
    assert {t["meta"]["source"] for t in tasks} == {"s3://sluice/tickets/a.jsonl", "s3://sluice/tickets/b.jsonl"}


MEDIA_SCRIPT = textwrap.dedent(
    """
    import os, sys, urllib.request
    sys.path.insert(0, {recipes!r})
    from prodigy_sluice import load
    [task] = load({url!r})
    print(task["image"], flush=True)
    with urllib.request.urlopen(task["image"]) as response:
        print(len(response.read()), flush=True)
    if os.environ.get("HOLD"):
        print("holding", flush=True)
        sys.stdin.read()
    """
)


def run_media_script(project, folder, hold=False):
    (folder / "photo.png").write_bytes(PNG)
    script = MEDIA_SCRIPT.format(recipes=str(RECIPES), url=f"{folder}?media-port=0")
    env = {**os.environ, **({"HOLD": "1"} if hold else {})}
    env.pop("SLUICE_BIN_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=project, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def test_the_media_proxy_outlives_the_stream_and_stops_with_python(project, tmp_path):
    proc = run_media_script(project, tmp_path)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:")
    assert int(proc.stdout.readline()) == len(PNG)  # served after the stream ended
    assert proc.wait(timeout=20) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)  # the CLI stopped when Python exited


def test_the_cli_stops_by_itself_when_python_is_killed(project, tmp_path):
    proc = run_media_script(project, tmp_path, hold=True)
    proc.stdout.readline()
    proc.stdout.readline()
    assert proc.stdout.readline().strip() == "holding"
    [pid] = [p for p in children(proc.pid) if alive(p)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_gone(pid, seconds=10)  # it watches SLUICE_PARENT_PID


def test_a_confluence_sink_url_names_its_command(monkeypatch, tmp_path):
    from prodigy_sluice._connectors import command_for

    monkeypatch.setenv("SLUICE_BIN_DIR", str(tmp_path))
    (tmp_path / "confluence-sink").write_text("")
    bin_path = str(tmp_path / "confluence-sink")
    assert command_for("confluence://page/42?dataset=ner", "sink") == [
        bin_path, "report", "confluence://page/42", "--dataset", "ner",
    ]
    assert command_for("confluence://page/42?command=review&flagged", "sink") == [
        bin_path, "review", "confluence://page/42", "--flagged",
    ]
    with pytest.raises(SluiceError, match="command=publish is not a confluence-sink command"):
        command_for("confluence://page/42?command=publish", "sink")


def test_file360_urls_run_the_file360_clis_with_their_template(monkeypatch, tmp_path):
    from prodigy_sluice._connectors import command_for

    monkeypatch.setenv("SLUICE_BIN_DIR", str(tmp_path))
    for name in ("file360-source", "file360-sink"):
        (tmp_path / name).write_text("")
    assert command_for("file360://node/48213?recursive&include=*.txt", "source") == [
        str(tmp_path / "file360-source"), "file360://node/48213", "--recursive", "--include", "*.txt",
    ]
    assert command_for("file360://node/48213/{dataset}/{date}?if_exists=fail", "sink") == [
        str(tmp_path / "file360-sink"), "file360://node/48213/{dataset}/{date}", "--if-exists", "fail",
    ]


def test_the_npx_fallback_runs_the_cli_version_this_package_was_released_with(tmp_path, monkeypatch):
    from prodigy_sluice._connectors import cli_command

    monkeypatch.chdir(tmp_path)  # no node_modules/.bin here or above
    npx = shutil.which("npx")
    assert npx, "npx must be on PATH for this test"
    assert cli_command("fs", "source") == [npx, "--yes", f"@sluice/fs-source@{CLI_VERSION}"]


def test_cli_version_is_the_version_of_the_npm_packages():
    # A release that bumps the npm packages and forgets prodigy_sluice/_version.py fails here.
    versions = {}
    for manifest in (REPO / "packages").glob("*/package.json"):
        package = json.loads(manifest.read_text())
        if not package.get("private"):
            versions[package["name"]] = package["version"]
    assert len(versions) >= 12
    assert set(versions.values()) == {CLI_VERSION}, versions
    assert prodigy_sluice.__version__ == CLI_VERSION  # prodigy-sluice shares the npm packages' version


def test_npx_that_cannot_fetch_the_cli_says_what_failed_and_how_to_install(tmp_path, monkeypatch):
    # A machine that reaches no registry: the real npx, offline, with an empty cache.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("npm_config_offline", "true")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    stream = load(str(tmp_path))
    with pytest.raises(SluiceError) as failure:
        next(stream)
    error = failure.value
    assert error.message.startswith(f"npx could not run @sluice/fs-source@{CLI_VERSION}: ENOTCACHED: ")
    assert error.hint == (
        f"install the CLI where Prodigy runs: `npm install @sluice/fs-source@{CLI_VERSION}` in that folder "
        "(or point SLUICE_BIN_DIR at a folder holding fs-source)"
    )
    assert "\n" not in str(error)

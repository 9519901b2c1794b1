"""Fixtures: prodigy-sluice installed into a fresh virtualenv, the built Sluice CLIs laid out
as `npm install` would, and helpers to run the stand-in Prodigy there.

The Node packages must be built first (`npm test` builds them before it runs pytest).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parent.parent
REPO = RECIPES.parent
STANDIN = Path(__file__).resolve().parent / "standin"
CLIS = ["fs-source", "fs-sink", "s3-source", "s3-sink"]
PNG = bytes.fromhex(  # a 1x1 PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)

sys.path.insert(0, str(RECIPES))  # the loader and export hook need no Prodigy: test them in-process


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """A folder whose node_modules/.bin holds the built CLIs, like a project after `npm install`."""
    root = tmp_path_factory.mktemp("project")
    bin_dir = root / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    for name in CLIS:
        cli = REPO / "packages" / name / "dist" / "cli.js"
        if not cli.is_file():
            pytest.fail(f"{cli} is missing: build the Node packages first (npm test does)")
        (bin_dir / name).symlink_to(cli)
    return root


@pytest.fixture(scope="session")
def venv(tmp_path_factory):
    """A virtualenv with prodigy-sluice installed by pip from recipes/ (no index needed)."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--quiet", str(RECIPES)],
        check=True,
    )
    return python


@pytest.fixture
def env(project, tmp_path):
    """Environment for a stand-in Prodigy process: its home (database) and the stand-in on the path."""
    home = tmp_path / "prodigy-home"
    home.mkdir()
    return {
        **os.environ,
        "PYTHONPATH": str(STANDIN),
        "PRODIGY_HOME": str(home),
        "SLUICE_JOURNAL_DIR": str(tmp_path / "journal"),
    }


def prodigy(venv, env, cwd, *args, **popen):
    """`python -m prodigy ARGS` in its own process group, as a terminal runs it."""
    return subprocess.Popen([str(venv), "-m", "prodigy", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **popen)


def wait_for(proc, marker):
    """Reads the process's stdout up to a line starting with `marker`; returns the lines read."""
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(marker):
            return lines
    raise AssertionError(f"the process ended before printing {marker!r}: {lines[-5:]}")


def ctrl_c(proc, timeout=60):
    """Ctrl-C in a terminal reaches the whole process group; returns (stdout rest, stderr)."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # fail this test alone, not the next ones too
        proc.communicate()
        raise


def serve_and_stop(proc, timeout=60):
    """Lets the stand-in server answer until it idles, then stops it as a user does: Ctrl-C."""
    lines = wait_for(proc, "serving until Ctrl-C")
    out, err = ctrl_c(proc, timeout)
    return "\n".join(lines) + out, err


def db_out(venv, env, cwd, dataset):
    run = subprocess.run([str(venv), "-m", "prodigy", "db-out", dataset], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True)
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def export_records(folder):
    """Records of a Sluice export, in part order, as a reader of the manifest sees them."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    return manifest, [r for part in manifest["parts"] for r in read_jsonl(Path(folder) / part["key"])]


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def children(pid):
    """Pids of the processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid, seconds=10.0):
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """s3rver from the test kit on a random loopback port; yields the environment for the S3 CLIs."""
    seed = tmp_path_factory.mktemp("s3seed")
    write_jsonl(seed / "tickets" / "a.jsonl", [{"text": f"ticket {i}"} for i in range(3)])
    write_jsonl(seed / "tickets" / "b.jsonl", [{"text": f"ticket {i}"} for i in range(3, 5)])
    (seed / "tickets" / "notes.txt").write_text("not selected\n")
    proc = subprocess.Popen(
        ["node", str(REPO / "packages/testkit/dist/serve.js"), "serve", "s3", "--port", str(free_port()), "--seed", str(seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    env = {}
    for line in proc.stdout:
        if line.strip().startswith("export "):
            env = dict(item.split("=", 1) for item in line.strip()[len("export "):].split())
            break
    if not env:
        proc.kill()
        pytest.fail("the test kit's S3 server did not start")
    yield env
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)

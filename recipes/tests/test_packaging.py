"""prodigy-sluice installs with no package index on the oldest and newest Python it supports, and
its wheel and sdist carry the licence. Interpreters come from pyenv (`~/.pyenv/versions`); venvs
get pip from the interpreter's own ensurepip, which needs no network."""

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import RECIPES, REPO

sys.path.insert(0, str(RECIPES / "_build"))
import backend  # noqa: E402

PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
LICENCE = (REPO / "LICENSE").read_bytes()


def interpreter(minor):
    found = sorted(PYENV.glob(f"{minor}.*/bin/python"))
    if not found:
        pytest.skip(f"no Python {minor} under {PYENV} (pyenv install {minor} to run this)")
    return found[-1]


def venv_with_pip(python, folder):
    subprocess.run([str(python), "-m", "venv", str(folder)], check=True, capture_output=True)
    return folder / "bin" / "python"


def offline(python, *args, cwd=None):
    """pip with no index and no cache, so nothing can come from PyPI."""
    return subprocess.run([str(python), "-m", "pip", "--no-cache-dir", "--disable-pip-version-check", *args,
                           "--no-index"], capture_output=True, text=True, cwd=cwd)


CHECK = """
import importlib.metadata as m, json
from prodigy_sluice import __version__
d = m.distribution("prodigy-sluice")
print(json.dumps([d.version, __version__, sorted(e.name for e in d.entry_points),
                  [str(f) for f in d.files if f.name == "LICENSE"], d.metadata["License"]]))
"""


@pytest.mark.parametrize("minor", ["3.8", "3.13"])
def test_installs_offline_from_the_folder_and_from_its_sdist(minor, tmp_path):
    python = venv_with_pip(interpreter(minor), tmp_path / "env")
    install = offline(python, "install", str(RECIPES))
    assert install.returncode == 0, install.stderr
    check = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, check=True).stdout
    version = backend._project()["version"]
    assert json.loads(check) == [version, version, ["sluice", "sluice.export", "sluice.publish"],
                                 [f"prodigy_sluice-{version}.dist-info/LICENSE"], "MIT"]

    # The sdist builds and installs on its own, away from the repository.
    dist = tmp_path / "dist"
    dist.mkdir()
    sdist = dist / backend.build_sdist(str(dist))
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "prodigy-sluice"], check=True)
    install = offline(python, "install", str(sdist), cwd=tmp_path)
    assert install.returncode == 0, install.stderr
    check = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(check.stdout)[0] == version


def test_wheel_and_sdist_carry_the_licence(tmp_path):
    wheel = zipfile.ZipFile(tmp_path / backend.build_wheel(str(tmp_path)))
    [licence] = [name for name in wheel.namelist() if name.endswith("/LICENSE")]
    assert licence.endswith(".dist-info/LICENSE") and wheel.read(licence) == LICENCE
    assert "License-File: LICENSE" in wheel.read(licence.replace("LICENSE", "METADATA")).decode()
    with tarfile.open(tmp_path / backend.build_sdist(str(tmp_path))) as sdist:
        [member] = [m for m in sdist.getmembers() if m.name.endswith("/LICENSE")]
        assert member.name.count("/") == 1  # at the sdist's root, beside pyproject.toml
        assert sdist.extractfile(member).read() == LICENCE


@pytest.mark.skipif(sys.version_info < (3, 11), reason="compares with tomllib, Python 3.11+")
def test_the_backends_own_toml_reader_reads_pyproject_as_tomllib_does():
    import tomllib

    text = (RECIPES / "pyproject.toml").read_text(encoding="utf-8")
    assert backend.parse_toml_subset(text) == tomllib.loads(text)
    with pytest.raises(ValueError, match="line 2"):
        backend.parse_toml_subset("[a]\nb = 'single quotes are not in the subset'\n")

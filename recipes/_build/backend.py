"""PEP 517 build backend for prodigy-sluice, standard library only.

`pip install ./recipes` (and `pip install -e ./recipes`) then need nothing from PyPI.
It reads the [project] table of pyproject.toml and builds a pure-Python wheel of the
`prodigy_sluice` package with its entry points; the sdist holds the same sources.
"""

import base64
import hashlib
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "prodigy_sluice"


def _project():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # get_requires_for_build_* asked the frontend for it
        import tomli as tomllib
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _dist_name(project):
    return project["name"].replace("-", "_")


def _metadata(project):
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project['description']}",
        f"License: {project['license']}",
        f"Requires-Python: {project['requires-python']}",
        *(f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])),
        "Description-Content-Type: text/markdown",
        "",
        (ROOT / project["readme"]).read_text(encoding="utf-8"),
    ]
    return "\n".join(lines)


def _entry_points(project):
    sections = []
    for group, entries in project.get("entry-points", {}).items():
        body = "".join(f"{name} = {target}\n" for name, target in entries.items())
        sections.append(f"[{group}]\n{body}")
    return "\n".join(sections)


def _sources():
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_bytes()


def _write_wheel(wheel_directory, files):
    project = _project()
    name = f"{_dist_name(project)}-{project['version']}"
    dist_info = f"{name}.dist-info"
    files = [
        *files,
        (f"{dist_info}/METADATA", _metadata(project).encode()),
        (f"{dist_info}/entry_points.txt", _entry_points(project).encode()),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: prodigy-sluice backend\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        ),
    ]
    record = []
    for path, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    filename = f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files:
            wheel.writestr(path, data)
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return [] if sys.version_info >= (3, 11) else ["tomli"]


get_requires_for_build_editable = get_requires_for_build_wheel
get_requires_for_build_sdist = get_requires_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, list(_sources()))


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: a .pth file puts this folder on sys.path, so edits take effect at once."""
    return _write_wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth", f"{ROOT}\n".encode())])


def build_sdist(sdist_directory, config_settings=None):
    project = _project()
    name = f"{_dist_name(project)}-{project['version']}"
    files = [
        ("pyproject.toml", (ROOT / "pyproject.toml").read_bytes()),
        (project["readme"], (ROOT / project["readme"]).read_bytes()),
        ("_build/backend.py", Path(__file__).read_bytes()),
        ("PKG-INFO", _metadata(project).encode()),
        *_sources(),
    ]
    filename = f"{name}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as sdist:
        for path, data in files:
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size = len(data)
            info.mode = 0o644
            sdist.addfile(info, io.BytesIO(data))
    return filename

"""PEP 517 build backend for prodigy-sluice, standard library only.

`pip install --no-index ./recipes` (and `pip install -e ./recipes`) then need nothing from PyPI,
on every Python from 3.8: pyproject.toml is read with tomllib where it exists (3.11+) and with a
reader of the small TOML subset this file uses elsewhere. It builds a pure-Python wheel of the
`prodigy_sluice` package with its entry points and licence; the sdist holds the same sources,
this backend and the licence, so it builds again anywhere.
"""

import base64
import hashlib
import io
import json
import os
import re
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "prodigy_sluice"


def parse_toml_subset(text):
    """Tables, `key = value` with quoted or bare keys, and values that are JSON: double-quoted
    strings, numbers, booleans and one-line arrays. Enough for pyproject.toml, and it fails
    loudly on anything else."""
    data = {}
    table = data
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or line.startswith("[["):
                raise ValueError(f"pyproject.toml line {number}: unsupported table {line!r}")
            table = data
            for key in _keys(line[1:-1]):
                table = table.setdefault(key, {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"pyproject.toml line {number}: expected key = value")
        keys = _keys(key)
        target = table
        for part in keys[:-1]:
            target = target.setdefault(part, {})
        try:
            target[keys[-1]] = json.loads(value.strip())
        except ValueError:
            raise ValueError(f"pyproject.toml line {number}: unsupported value {value.strip()!r}") from None
    return data


def _strip_comment(line):
    quoted = False
    for i, char in enumerate(line):
        if char == '"' and (i == 0 or line[i - 1] != "\\"):
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:i]
    return line


def _keys(text):
    return [json.loads(part) if part.startswith('"') else part
            for part in (p.strip() for p in re.findall(r'"(?:[^"\\]|\\.)*"|[^.]+', text.strip()))]


def _pyproject():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        return parse_toml_subset(text)
    return tomllib.loads(text)


def _project():
    project = dict(_pyproject()["project"])
    if "version" in project.get("dynamic", []):
        source = (ROOT / PACKAGE / "_version.py").read_text(encoding="utf-8")
        project["version"] = re.search(r'^__version__ = "([^"]+)"', source, re.M).group(1)
    return project


def _licence():
    """The repository's LICENSE: beside pyproject.toml in an sdist, one folder up in a clone."""
    for folder in (ROOT, ROOT.parent):
        if (folder / "LICENSE").is_file():
            return (folder / "LICENSE").read_bytes()
    raise FileNotFoundError("LICENSE not found beside pyproject.toml or one folder up")


def _dist_name(project):
    return project["name"].replace("-", "_")


def _metadata(project):
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project['description']}",
        f"License: {project['license']}",
        "License-File: LICENSE",
        "Classifier: License :: OSI Approved :: MIT License",
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
        (f"{dist_info}/LICENSE", _licence()),
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
    return []


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
        ("LICENSE", _licence()),
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


if __name__ == "__main__":
    # `python3 _build/backend.py dist`: the wheel and the sdist, as a release attaches them.
    import sys

    out = sys.argv[1] if len(sys.argv) > 1 else "dist"
    os.makedirs(out, exist_ok=True)
    for built in (build_wheel(out), build_sdist(out)):
        print(os.path.join(out, built))

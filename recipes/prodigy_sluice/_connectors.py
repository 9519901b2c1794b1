"""Which Sluice CLI serves a URL, where to find it, and how its flags ride in the URL.

Nothing here imports Prodigy: the loader and the export hook are plain Python around a
Node subprocess, so they are tested (and usable) without it.
"""

import os
import re
import shutil
from collections import deque
from pathlib import Path
from typing import Iterable, List, Optional, Tuple
from urllib.parse import unquote

from ._version import CLI_VERSION

# URL scheme -> connector name; a plain path means the local-folder connector.
CONNECTORS = {
    "file": "fs",
    "s3": "s3",
    "gs": "gcs",
    "gdrive": "gdrive",
    "confluence": "confluence",
    "file360": "file360",
}
_FLAG = re.compile(r"[a-z][a-z0-9-]*")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


class SluiceError(RuntimeError):
    """A Sluice connector failed; the message is the connector's own one-line error."""

    def __init__(self, message: str, *, exit_code: Optional[int] = None, hint: Optional[str] = None):
        super().__init__(message if hint is None else f"{message} (hint: {hint})")
        self.message = message
        self.exit_code = exit_code
        self.hint = hint


def connector_for(location: str) -> str:
    """`s3://b/p` -> `s3`; `./data`, `/abs/path` and `file://...` -> `fs`."""
    scheme, sep, _ = location.partition("://")
    if not sep or _WINDOWS_DRIVE.match(location):
        return "fs"
    connector = CONNECTORS.get(scheme.lower())
    if connector is None:
        known = ", ".join(f"{s}://" for s in CONNECTORS)
        raise SluiceError(
            f"{location}: no Sluice connector for {scheme}:// URLs",
            hint=f"use one of {known} or a local path",
        )
    return connector


def split_flags(url: str) -> Tuple[str, List[str]]:
    """`s3://b/p?include=**/*.jpg&media=proxy&quiet` -> (`s3://b/p`, [--include, **/*.jpg, ...]).

    Everything after the first `?` is connector flags: `name=value` becomes `--name value`,
    a bare `name` (or `name=`) a switch; repeat a name to repeat the flag. Names and values
    are percent-decoded (`+` stays a plus); `_` in names is read as `-`.
    """
    location, _, query = url.partition("?")
    flags: List[str] = []
    for item in filter(None, query.split("&")):
        raw_name, _, value = item.partition("=")
        name = unquote(raw_name).replace("_", "-")
        if not _FLAG.fullmatch(name):
            raise SluiceError(
                f"{url}: {raw_name!r} in the query string is not a flag name",
                hint="write connector flags as ?name=value&other=value, e.g. ?include=**/*.jsonl",
            )
        flags.append(f"--{name}")
        if value:
            flags.append(unquote(value))
    return location, flags


def cli_command(connector: str, kind: str) -> List[str]:
    """The command that runs `@sluice/<connector>-<kind>`.

    Looked up in this order: the folder in SLUICE_BIN_DIR; `node_modules/.bin` in the
    current folder or any parent (a project that ran `npm install @sluice/...`); `npx`, at
    the version this package was released with (CLI_VERSION), never whatever is latest.
    """
    name = f"{connector}-{kind}"
    names = [name, f"{name}.cmd"] if os.name == "nt" else [name]
    configured = os.environ.get("SLUICE_BIN_DIR")
    if configured:
        for candidate in names:
            if (Path(configured) / candidate).is_file():
                return [str(Path(configured) / candidate)]
        raise SluiceError(
            f"SLUICE_BIN_DIR={configured} has no {name}",
            hint=f"run `npm install @sluice/{name}` and point SLUICE_BIN_DIR at its node_modules/.bin, or unset it",
        )
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        for candidate in names:
            path = folder / "node_modules" / ".bin" / candidate
            if path.is_file():
                return [str(path)]
    npx = shutil.which("npx")
    if npx:
        return [npx, "--yes", f"@sluice/{name}@{CLI_VERSION}"]
    raise SluiceError(
        f"cannot run {name}: no SLUICE_BIN_DIR, no node_modules/.bin/{name} here or above, and no npx",
        hint=f"install Node.js 22 or later, then `{_install(name)}` in the folder you run Prodigy from",
    )


def _install(name: str) -> str:
    return f"npm install @sluice/{name}@{CLI_VERSION}"


def cli_failure(argv: List[str], tail: "StderrTail", code: int) -> SluiceError:
    """The error for a CLI that exited with `code`: its own one-line error, or, when `npx`
    could not fetch or start it (no registry, no cache, no such version), what npm said and
    how to install the CLI instead."""
    message, hint = tail.error(f"{Path(argv[0]).name} exited with code {code}")
    npm = tail.npm_error()
    if npm is not None and Path(argv[0]).stem == "npx" and ": error: " not in message:
        package = next((arg for arg in argv[1:] if arg.startswith("@sluice/")), "the Sluice CLI")
        name = package.split("/", 1)[-1].rsplit("@", 1)[0]
        return SluiceError(
            f"npx could not run {package}: {npm}",
            exit_code=code,
            hint=f"install the CLI where Prodigy runs: `{_install(name)}` in that folder "
            f"(or point SLUICE_BIN_DIR at a folder holding {name})",
        )
    return SluiceError(message, exit_code=code, hint=hint)


# Sinks whose CLI takes a command before the URL (`confluence-sink report URL`): the
# command rides in the query string as `command=`, else the first one here.
SINK_COMMANDS = {"confluence": ("report", "review")}


def command_for(url: str, kind: str, extra: Iterable[str] = ()) -> List[str]:
    location, flags = split_flags(url)
    connector = connector_for(location)
    commands = SINK_COMMANDS.get(connector, ()) if kind == "sink" else ()
    command: List[str] = []
    if commands:
        command = [commands[0]]
        if "--command" in flags:
            at = flags.index("--command")
            chosen = flags[at + 1] if at + 1 < len(flags) else ""
            if chosen not in commands:
                raise SluiceError(
                    f"{url}: command={chosen} is not a {connector}-sink command",
                    hint=f"use command={' or command='.join(commands)}",
                )
            command = [chosen]
            del flags[at : at + 2]
    return [*cli_command(connector, kind), *command, location, *extra, *flags]


class StderrTail:
    """Keeps the last lines a CLI printed, and picks out its one-line error."""

    def __init__(self, lines: int = 50):
        self.lines: deque = deque(maxlen=lines)

    def add(self, line: str) -> None:
        self.lines.append(line.rstrip("\n"))

    def npm_error(self) -> Optional[str]:
        """npm's own error (`npm error code E404` and its reason), when npm printed one."""
        code = detail = None
        for line in self.lines:
            text = line.split("npm error", 1)[1].strip() if line.startswith("npm error") else \
                line.split("npm ERR!", 1)[1].strip() if line.startswith("npm ERR!") else None
            if text is None:
                continue
            if text.startswith("code ") and code is None:
                code = text[5:].strip()
            elif detail is None and text and not re.match(r"(syscall|errno|at |A complete log|[{}])", text):
                detail = text
        if code is None and detail is None:
            return None
        return ": ".join(part for part in (code, detail) if part)

    def error(self, fallback: str) -> Tuple[str, Optional[str]]:
        message = hint = None
        for line in self.lines:
            if ": error: " in line:
                message, hint = line, None
            elif ": hint: " in line and message is not None:
                hint = line.split(": hint: ", 1)[1]
        if message is None:
            message = next((line for line in reversed(self.lines) if line.strip()), fallback)
        return message, hint

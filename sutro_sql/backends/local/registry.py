"""The Functions a local deployment knows: spec files in `<functions_dir>`, reloaded when they change.

A broken spec file makes only its own Functions unusable: asking for one of them raises the
file's SpecError (file, field, line and column), every other Function keeps working.

Parsing a spec (pydantic, JSON Schema checks, revision hash) costs far more than a
real-time answer may spend, so parsed specs are cached and the folder is only
re-read when a file's name, size or modification time changes (a few `stat` calls
per lookup).
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ...errors import ConfigurationError, NotFoundError
from ...functions import FunctionSpec, SpecFolder, load_spec_folder, spec_paths

#: A folder whose newest timestamp is younger than this is re-read at the next lookup.
_SETTLE_NS = 50_000_000


@dataclass(frozen=True)
class RegisteredFunction:
    """A loaded spec with its revision computed once."""

    spec: FunctionSpec
    revision: str


class FunctionRegistry:
    """Specs in one folder, by name. Thread-safe."""

    def __init__(self, functions_dir: str | Path) -> None:
        self.functions_dir = Path(functions_dir)
        self._lock = threading.Lock()
        self._fingerprint: tuple | None = None
        # what the last load found: the usable Functions, and the folder as read (broken names, files)
        self._loaded: tuple[dict[str, RegisteredFunction], SpecFolder] = ({}, SpecFolder((), {}, {}, ()))
        self._files: tuple[str, ...] = ()  # paths of the spec files last loaded

    def _current_fingerprint(self) -> tuple:
        """(folder mtime, (file, size, mtime) for each spec file last seen): the folder's mtime moves
        when a file is added, removed or renamed in, a file's own when it is edited in place."""
        try:
            folder = os.stat(self.functions_dir).st_mtime_ns
            files = tuple(_size_and_mtime(path) for path in self._files)
        except FileNotFoundError:
            return ()
        return folder, files

    def _refresh(self) -> tuple[dict[str, RegisteredFunction], SpecFolder]:
        fingerprint = self._current_fingerprint()
        if fingerprint == self._fingerprint:
            return self._loaded
        with self._lock:
            if fingerprint != self._fingerprint:
                self._files = tuple(str(path) for path in spec_paths(self.functions_dir))
                fingerprint = self._current_fingerprint()
                folder = load_spec_folder(self.functions_dir)
                functions = {name: RegisteredFunction(spec, spec.revision) for name, spec in folder.functions.items()}
                self._loaded = (functions, folder)
                # Timestamps are coarse (a few ms): a change made in the same tick as this load
                # would leave them unchanged, so a folder changed that recently is re-read next time.
                newest = max([fingerprint[0], *(mtime for _, mtime in fingerprint[1])]) if fingerprint else 0
                self._fingerprint = fingerprint if time.time_ns() - newest > _SETTLE_NS else None
            return self._loaded

    def get(self, name: str) -> RegisteredFunction:
        """The Function called `name`; the SpecError of its file if that file is broken, NotFoundError
        (code function_not_found) if there is none."""
        functions, folder = self._refresh()
        found = functions.get(name)
        broken = folder.broken.get(name)
        if found is None and broken is not None:
            raise copy.copy(broken)  # a fresh instance per caller: tracebacks never pile up on a shared one
        if found is None:
            raise NotFoundError(f"Function {name!r} not found.", code="function_not_found")  # no server paths
        return found

    def all(self) -> list[FunctionSpec]:
        """Every Function whose spec loads, in name order (a broken file's are left out)."""
        functions, _ = self._refresh()
        return [entry.spec for _, entry in sorted(functions.items())]

    def publish(self, spec: FunctionSpec) -> FunctionSpec:
        """Write `spec` to `<functions_dir>/<name>.yaml` atomically (replacing the file that defined
        that name before, if it held only that Function) and return it as loaded back."""
        _, folder = self._refresh()
        self.functions_dir.mkdir(parents=True, exist_ok=True)
        target = _file_defining(folder, spec.name) or self.functions_dir / f"{spec.name}.yaml"
        data = spec.model_dump(mode="json")
        if target.suffix == ".json":
            text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        else:
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
        return self.get(spec.name).spec


def _file_defining(folder: SpecFolder, name: str) -> Path | None:
    """The file that defines (or, broken, claims) `name`, so publishing replaces it."""
    for read in folder.files:
        if name in read.names:
            if len(read.names) > 1:
                raise ConfigurationError(
                    f"{read.path} defines several Functions including {name!r}; edit that file instead of publishing."
                )
            return read.path
    return None


def _size_and_mtime(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns

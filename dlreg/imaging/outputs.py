"""Output files that are whole or absent: checked before the work, written to a temporary file
in the target folder, flushed to disk, verified, then renamed into place.

A full disk, a read-only folder or a writer that stops short (ITK's NIfTI writer prints a line
and carries on) then ends in an OutputError naming the path, never in a missing or truncated
file behind exit status 0. `StagedOutputs` commits several files together: when one fails,
none of them appears (a transform is not left without its image).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from dlreg.errors import DLRegError

Writer = Callable[[Path], None]
# Temporary files are named .<stem>.partial-<random><suffixes>: `remove_partial` finds what a
# killed process left behind.
TEMP_MARK = ".partial-"
# Files get the permissions an ordinary open() would give them (mkstemp's are owner-only).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
Verifier = Callable[[Path], None]


class OutputError(DLRegError, OSError):
    """An output file cannot be written (or would overwrite an input); `reason` says why."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def _cannot_write(path: Path, reason: str) -> OutputError:
    return OutputError(f"cannot write {path}: {reason}", reason)


def check_output_paths(outputs: Iterable[str | os.PathLike | None], inputs: Sequence[str | os.PathLike] = ()) -> None:
    """Before any work: every output can be created in its folder and is none of the inputs."""
    given = [Path(p) for p in outputs if p]
    sources = [Path(p).resolve() for p in inputs if p]
    for path in given:
        if path.resolve() in sources:
            raise OutputError(f"output {path} is also an input: it would overwrite it; choose another path")
        if path.is_dir():
            raise OutputError(f"output {path} is a folder; give a file name")
        folder = _existing_ancestor(path.parent)
        if not folder.is_dir():
            raise _cannot_write(path, f"{folder} is a file, not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise _cannot_write(path, f"the folder {folder} is not writable")
    if len({p.resolve() for p in given}) < len(given):
        raise OutputError("two outputs have the same path; give each its own")


def atomic_write(path: str | os.PathLike, write: Writer, verify: Verifier | None = None) -> Path:
    """Write `path` through a temporary file: write, fsync, verify, rename (one file)."""
    with StagedOutputs() as staged:
        staged.add(path, write, verify)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """A text file (UTF-8), written atomically."""
    return atomic_write(path, lambda temporary: temporary.write_bytes(text.encode("utf-8")))


def remove_partial(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed writer left in `folder`; return them."""
    folder = Path(folder)
    leftovers = sorted(folder.glob(f".*{TEMP_MARK}*")) if folder.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


class StagedOutputs:
    """Files written to temporary names, renamed into place together when the block ends without error."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def add(self, path: str | os.PathLike, write: Writer, verify: Verifier | None = None) -> None:
        """Write and verify one file now, under a temporary name beside `path`."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f".{path.stem}{TEMP_MARK}", suffix="".join(path.suffixes) or ".tmp",
                                            dir=path.parent)
            os.close(handle)
            os.chmod(name, 0o666 & ~_UMASK)
        except OSError as exc:
            raise _cannot_write(path, exc.strerror or str(exc)) from None
        temporary = Path(name)
        self._staged.append((temporary, path))
        try:
            write(temporary)
            _fsync(temporary)
            if temporary.stat().st_size == 0:
                raise OutputError("nothing was written (is the disk full?)")
            if verify is not None:
                verify(temporary)
        except OutputError as exc:  # a writer that writes atomically itself
            raise _cannot_write(path, exc.reason) from None
        except (DLRegError, OSError, RuntimeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
            raise _cannot_write(path, reason) from None

    def commit(self) -> None:
        """Rename every staged file into place."""
        for temporary, path in self._staged:
            os.replace(temporary, path)
        for folder in {path.parent for _, path in self._staged}:
            _fsync_folder(folder)
        self._staged.clear()

    def discard(self) -> None:
        """Remove the staged files (nothing reaches its final name)."""
        for temporary, _ in self._staged:
            temporary.unlink(missing_ok=True)
        self._staged.clear()

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what C libraries print on file descriptor 2 (ITK's NIfTI writer reports a short write
    there and carries on); the lines are in the yielded list when the block ends."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += [line.strip() for line in sink.read().decode("utf-8", "replace").splitlines() if line.strip()]


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _fsync(path: Path) -> None:
    with open(path, "rb+") as stream:
        os.fsync(stream.fileno())


def _fsync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # folders cannot be opened on some systems; the files themselves are on disk
    try:
        os.fsync(handle)
    finally:
        os.close(handle)

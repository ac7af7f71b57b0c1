"""Downloading, copying and verifying the MNIST files; nothing lands on disk unverified."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from archspec.data.locations import default_dataset_dir
from archspec.data.mnist import MNIST_FILES, MNIST_SHA256, find_file, locate_mnist
from archspec.errors import DataError, UsageError

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_CHUNK = 1 << 20
# What a failed download, copy or decompression raises; reported, never shown as a traceback.
_TRANSFER_ERRORS = (OSError, EOFError, zlib.error, http.client.HTTPException, ValueError)

Report = Callable[[str], None]


def verify_mnist(data_dir: str | Path | None = None) -> Path:
    """Check the SHA-256 of the uncompressed content of all four MNIST files.

    The files are found as by ``locate_mnist(data_dir)``. Returns the folder that holds
    them. Raises DataError listing every file that does not match.
    """
    paths = locate_mnist(data_dir)
    problems = []
    for name, path in paths.items():
        problem = _digest_problem(path, name, gzipped=path.suffix == ".gz")
        if problem:
            problems.append(f"{path}: {problem}")
    if problems:
        raise DataError(
            f"MNIST failed verification: {'; '.join(problems)}. Run `archspec data fetch mnist` to replace the files"
        )
    return next(iter(paths.values())).parent


def fetch_mnist(
    dest_dir: str | Path | None = None,
    *,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    force: bool = False,
    timeout: float = 60.0,
    report: Report | None = None,
) -> Path:
    """Download the four ``.gz`` MNIST files into ``dest_dir`` and return that folder.

    ``dest_dir`` defaults to ``$ARCHSPEC_DATA_DIR/mnist`` or else the user cache
    (``~/.cache/archspec/mnist``). Each file is fetched from ``mirrors`` (base URLs; http,
    https and file URLs all work) in order until a copy's uncompressed content has the known
    SHA-256. Downloads go to a temporary file renamed into place only once verified, so a
    failed or interrupted fetch leaves nothing behind. Files already present and verified are
    kept unless ``force``. ``report`` receives one line per action. Raises DataError when no
    mirror gives a good copy of a file, listing what each mirror did.
    """
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    if not mirrors:
        raise UsageError("expected at least one mirror URL, received mirrors=()")
    report = report or _ignore
    dest = _make_dir(default_dataset_dir("mnist") if dest_dir is None else dest_dir)
    for name in MNIST_FILES:
        if not force and _has_verified_copy(dest, name, report):
            continue
        target = dest / f"{name}.gz"
        failures = []
        for mirror in mirrors:
            url = f"{mirror.rstrip('/')}/{name}.gz"
            report(f"downloading {url}")
            download = functools.partial(_download, url, timeout=timeout)
            problem = _install_verified(name, target, download)
            if problem is None:
                break
            failures.append(f"{url}: {problem}")
        else:
            raise DataError(
                f"could not fetch {name}.gz: expected a copy with SHA-256 {MNIST_SHA256[name]} "
                f"(uncompressed) from a mirror, received {'; '.join(failures)}"
            )
        report(f"wrote {target}")
        _remove_shadowing_copy(dest, name, target, report)
    return dest


def install_mnist_from(
    src_dir: str | Path, dest_dir: str | Path | None = None, *, report: Report | None = None
) -> Path:
    """Copy the four MNIST files (raw or ``.gz``, as found) from ``src_dir`` into ``dest_dir``.

    ``src_dir`` is searched like ``locate_mnist(src_dir)``; ``dest_dir`` defaults as in
    ``fetch_mnist``. Every copy is verified against the known SHA-256 before it is renamed
    into place; files already present and verified are kept. Returns the destination folder.
    Raises DataError naming a source file whose content does not match.
    """
    report = report or _ignore
    sources = locate_mnist(src_dir)
    dest = _make_dir(default_dataset_dir("mnist") if dest_dir is None else dest_dir)
    for name, source in sources.items():
        if _has_verified_copy(dest, name, report):
            continue
        target = dest / source.name
        problem = _install_verified(name, target, functools.partial(_copy, source))
        if problem:
            raise DataError(f"{source}: {problem}")
        report(f"copied {source} to {target}")
        _remove_shadowing_copy(dest, name, target, report)
    return dest


def _ignore(message: str) -> None:
    pass


def _make_dir(directory: str | Path) -> Path:
    directory = Path(directory).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{directory}: expected a folder that can be created, received {error}") from None
    return directory


def _digest(path: Path, gzipped: bool) -> str:
    digest = hashlib.sha256()
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _digest_problem(path: Path, name: str, *, gzipped: bool) -> str | None:
    """Why ``path`` is not a good copy of MNIST file ``name``, or None when it is."""
    try:
        digest = _digest(path, gzipped)
    except _TRANSFER_ERRORS as error:
        expected = "a complete gzip stream" if gzipped else "a readable file"
        return f"expected {expected}, received {error}"
    if digest != MNIST_SHA256[name]:
        return f"expected SHA-256 {MNIST_SHA256[name]} of the uncompressed content, received {digest}"
    return None


def _has_verified_copy(dest: Path, name: str, report: Report) -> bool:
    existing = find_file(dest, name)
    if existing is None:
        return False
    if _digest_problem(existing, name, gzipped=existing.suffix == ".gz") is None:
        report(f"{existing} already present and verified")
        return True
    return False


def _install_verified(name: str, target: Path, fill: Callable[[BinaryIO], None]) -> str | None:
    """Write ``target`` through a temporary file that ``fill`` writes; None, or why it failed.

    The temporary file is renamed to ``target`` only when its content has the SHA-256 of
    ``name``; otherwise it is deleted.
    """
    try:
        handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as error:
        raise DataError(f"{target.parent}: expected a writable folder, received {error}") from None
    temp = Path(temp_name)
    try:
        try:
            with os.fdopen(handle, "wb") as out:
                fill(out)
        except _TRANSFER_ERRORS as error:
            return str(error)
        problem = _digest_problem(temp, name, gzipped=target.suffix == ".gz")
        if problem:
            return problem
        # mkstemp creates the file readable by its owner only; data files are for everyone.
        temp.chmod(0o644)
        os.replace(temp, target)
        return None
    finally:
        temp.unlink(missing_ok=True)


def _download(url: str, out: BinaryIO, *, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "archspec"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        shutil.copyfileobj(response, out, _CHUNK)


def _copy(source: Path, out: BinaryIO) -> None:
    with open(source, "rb") as stream:
        shutil.copyfileobj(stream, out, _CHUNK)


def _remove_shadowing_copy(dest: Path, name: str, target: Path, report: Report) -> None:
    """Delete a bad copy of ``name`` that the loader would pick instead of ``target``."""
    found = find_file(dest, name)
    if found is not None and found != target and _digest_problem(found, name, gzipped=found.suffix == ".gz"):
        found.unlink()
        report(f"removed {found}, which failed verification")

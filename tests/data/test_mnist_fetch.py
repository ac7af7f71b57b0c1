"""Fetching MNIST from local mirrors (http and file URLs), verifying, installing from a folder."""

from __future__ import annotations

import functools
import gzip
import http.server
import threading

import numpy as np
import pytest

from archspec.data import (
    MNIST_FILES,
    MNIST_SHA256,
    fetch_mnist,
    install_mnist_from,
    read_mnist,
    verify_mnist,
)
from archspec.errors import DataError, UsageError


@pytest.fixture
def serve(clean_env):
    """Start an HTTP server on 127.0.0.1 for a folder; returns its base URL."""
    servers = []

    def start(folder):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def _bad_mirror(folder):
    folder.mkdir()
    for name in MNIST_FILES:
        (folder / f"{name}.gz").write_bytes(gzip.compress(b"not the MNIST you are looking for"))
    return folder


def test_fetch_over_http_writes_verified_files(mnist_dir, serve, clean_env):
    dest = clean_env / "dest"
    lines = []
    assert fetch_mnist(dest, mirrors=[serve(mnist_dir)], report=lines.append) == dest
    assert sorted(path.name for path in dest.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)
    assert verify_mnist(dest) == dest
    assert lines[0].startswith("downloading http://127.0.0.1:")
    np.testing.assert_array_equal(read_mnist(dest)[1][1], read_mnist(mnist_dir)[1][1])
    # A second fetch finds every file verified and downloads nothing.
    lines.clear()
    fetch_mnist(dest, mirrors=["http://127.0.0.1:9/unreachable/"], report=lines.append)
    assert len(lines) == 4 and all("already present and verified" in line for line in lines)


def test_fetch_default_destination_follows_environment(mnist_dir, clean_env, monkeypatch):
    assert fetch_mnist(mirrors=mnist_dir.as_uri()) == clean_env / "cache" / "archspec" / "mnist"
    monkeypatch.setenv("ARCHSPEC_DATA_DIR", str(clean_env / "env"))
    assert fetch_mnist(mirrors=mnist_dir.as_uri()) == clean_env / "env" / "mnist"
    assert verify_mnist() == clean_env / "env" / "mnist"


def test_hash_mismatch_leaves_nothing_behind(serve, clean_env):
    url = serve(_bad_mirror(clean_env / "bad"))
    dest = clean_env / "dest"
    with pytest.raises(DataError) as error:
        fetch_mnist(dest, mirrors=[url])
    message = str(error.value)
    assert message.startswith("could not fetch train-images-idx3-ubyte.gz: expected a copy with SHA-256 ba8910")
    assert f"{url}train-images-idx3-ubyte.gz: expected SHA-256 ba8910" in message
    assert list(dest.iterdir()) == []


def test_falls_back_to_the_next_mirror(mnist_dir, serve, clean_env):
    bad, missing = serve(_bad_mirror(clean_env / "bad")), serve(clean_env)
    dest = fetch_mnist(clean_env / "dest", mirrors=[bad, missing, mnist_dir.as_uri() + "/"])
    assert verify_mnist(dest) == dest
    assert not list(dest.glob(".*"))


def test_unreachable_mirrors_are_each_reported(serve, clean_env):
    missing = serve(clean_env)
    expected = r"404.*; file:///nonexistent/folder/train-images-idx3-ubyte\.gz: "
    with pytest.raises(DataError, match=expected):
        fetch_mnist(clean_env / "dest", mirrors=[missing, "file:///nonexistent/folder"])


def test_fetch_replaces_a_bad_raw_copy_that_would_shadow_it(mnist_dir, clean_env, fake_mnist):
    dest = fake_mnist(clean_env / "dest", gz=False)
    fetch_mnist(dest, mirrors=mnist_dir.as_uri())
    assert sorted(path.name for path in dest.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)


def test_no_mirrors_is_a_usage_error(clean_env):
    with pytest.raises(UsageError, match="at least one mirror"):
        fetch_mnist(clean_env / "dest", mirrors=[])


def test_verify_lists_every_bad_file(clean_env, fake_mnist):
    folder = fake_mnist(clean_env / "fake")
    with pytest.raises(DataError) as error:
        verify_mnist(folder)
    message = str(error.value)
    for name in MNIST_FILES:
        assert f"{folder / name}.gz: expected SHA-256 {MNIST_SHA256[name]} " in message
    assert "archspec data fetch mnist" in message


def test_install_from_folder(mnist_dir, clean_env):
    dest = install_mnist_from(mnist_dir, clean_env / "project" / "data" / "mnist")
    assert verify_mnist(dest) == dest
    assert (dest / "train-images-idx3-ubyte.gz").read_bytes() == (mnist_dir / "train-images-idx3-ubyte.gz").read_bytes()
    assert (dest / "train-images-idx3-ubyte.gz").stat().st_mode & 0o777 == 0o644


def test_install_refuses_a_corrupt_source(clean_env, fake_mnist):
    source = fake_mnist(clean_env / "fake")
    dest = clean_env / "dest"
    with pytest.raises(DataError, match=f"^{source}/train-images-idx3-ubyte.gz: expected SHA-256"):
        install_mnist_from(source, dest)
    assert list(dest.iterdir()) == []

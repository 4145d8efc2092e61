"""A real S3 server for tests: moto's server on a free 127.0.0.1 port, in a thread of the test
process (``threaded_moto_s3_server``: moto's own ``ThreadedMotoServer``, nothing to wait for)
or in its own process (``moto_s3_server``: when the server needs its own environment, e.g.
moto's authentication settings, or must not share the test's interpreter, as in benchmarks).

Needs ``moto[server]`` (the ``plait-s3[test]`` extra). Point plait-s3 at it with the
``endpoint_url`` setting, e.g. in a pytest fixture::

    import pytest
    from plait_s3.testing import moto_s3_server

    @pytest.fixture(scope="session")
    def s3_endpoint():
        with moto_s3_server() as endpoint:
            yield endpoint

    @pytest.fixture(autouse=True)
    def use_moto(s3_endpoint, monkeypatch):
        monkeypatch.setenv("PLAIT__PLUGINS__S3__ENDPOINT_URL", s3_endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")          # moto takes any keys
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        from plait.config import reset_config
        import plait_s3
        reset_config(); plait_s3.clear_clients()                 # read the new settings

The server keeps everything in memory and forgets it when it stops.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["MotoServerError", "moto_s3_server", "start_moto_server", "stop_moto_server", "threaded_moto_s3_server"]


class MotoServerError(RuntimeError):
    """The moto server did not start; the message has the end of its log."""


@contextmanager
def threaded_moto_s3_server() -> Iterator[str]:
    """moto's ``ThreadedMotoServer`` on a port the system picks (no race for a free port), for
    the block; yields its endpoint URL. Any process can reach it over HTTP (a ``plait run``
    subprocess too); it shares the test process's moto state and interpreter."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def moto_s3_server(log_dir: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run a moto server for the block; yields its endpoint URL (``http://127.0.0.1:PORT``)."""
    process, endpoint = start_moto_server(log_dir, env)
    try:
        yield endpoint
    finally:
        stop_moto_server(process)


def start_moto_server(
    log_dir: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[subprocess.Popen, str]:
    """Start ``python -m moto.server`` on a free port; returns the process and its endpoint.

    Waits until the server answers HTTP. ``env`` adds environment variables for the server
    (moto reads settings such as ``INITIAL_NO_AUTH_ACTION_COUNT`` from there).

    Raises:
        MotoServerError: it did not start in ``timeout`` seconds, three times (a port taken
            between choosing and binding it is retried).
    """
    folder = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="plait-moto-"))
    last_log = ""
    for _attempt in range(3):
        port = _free_port()
        log = folder / f"moto-{port}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2):
                    return process, endpoint
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)  # polling for readiness
        stop_moto_server(process)
        last_log = log.read_text(errors="replace")[-2000:]
    raise MotoServerError(
        f"The moto S3 server did not start on 127.0.0.1 (is moto[server] installed? pip install 'moto[server]'). "
        f"Its log ends with:\n{last_log}"
    )


def stop_moto_server(process: subprocess.Popen) -> None:
    """Stop a server started by ``start_moto_server`` and wait for it to exit."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    from plait.testing import free_port

    return free_port()

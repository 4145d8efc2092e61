"""A Podman service of its own: Docker's API on a Unix socket, for tests and machines without Docker.

``PodmanService`` runs ``podman system service`` with every piece of state (images, containers,
run files, events, networks) in one folder, so it neither depends on nor changes the host's
Podman set-up, and points the Docker SDK at it::

    with PodmanService() as podman:
        os.environ["DOCKER_HOST"] = podman.url      # unix:///tmp/plait-podman-.../podman.sock
        ...
        print(podman.cli("ps", "-a").stdout)        # the podman command, on the same storage

It uses the ``runc`` runtime and the ``cgroupfs`` cgroup manager, which work on hosts where
``crun`` or systemd's cgroup manager do not (hybrid cgroup v1/v2 hierarchies, containers
without systemd), and gives every container ``default_ulimits`` (Podman's default ``nofile``
limit is above what an unprivileged or nested host allows, and the container would not start).
``stop()`` removes every container, unmounts the storage and deletes the folder: nothing is
left behind, not even a ``conmon`` process.

Needs ``podman`` (with ``conmon``) and ``runc`` on ``PATH``: ``apt-get install podman runc``.
Running as root is the tested set-up; rootless Podman needs ``newuidmap`` and subordinate ids.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["DEFAULT_ULIMITS", "PodmanService", "PodmanUnavailable"]

#: Limits every container of the service gets unless it sets its own (soft, hard).
DEFAULT_ULIMITS = {"nofile": (1024, 1024), "nproc": (4096, 4096)}


class PodmanUnavailable(RuntimeError):
    """The Podman service cannot run here; the message says why and what to install."""


class PodmanService:
    """``podman system service`` on a Unix socket, with its storage in ``directory``.

    Args:
        directory: where everything goes (default: a new temporary folder, deleted by ``stop()``).
            Keep it short: the socket's path must fit in 107 bytes.
        runtime: the OCI runtime (default ``runc``).
        cgroup_manager: ``cgroupfs`` (default) or ``systemd``.
        ulimits: the ``default_ulimits`` of every container, ``{name: (soft, hard)}``.
        insecure_registries: registries reached over plain HTTP (``"127.0.0.1:5000"``).
        storage_driver: ``overlay`` (default; needs the kernel's overlay filesystem) or ``vfs``
            (slower, works anywhere).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        runtime: str = "runc",
        cgroup_manager: str = "cgroupfs",
        ulimits: dict[str, tuple[int, int]] | None = None,
        insecure_registries: list[str] | tuple[str, ...] = (),
        storage_driver: str = "overlay",
    ) -> None:
        self._given_directory = directory
        self.directory: Path | None = None
        self.runtime = runtime
        self.cgroup_manager = cgroup_manager
        self.ulimits = dict(DEFAULT_ULIMITS if ulimits is None else ulimits)
        self.insecure_registries = list(insecure_registries)
        self.storage_driver = storage_driver
        self.process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        assert self.directory is not None, "the service is not started"
        return self.directory / "podman.sock"

    @property
    def url(self) -> str:
        """The ``DOCKER_HOST`` value for this service: ``unix:///.../podman.sock``."""
        return f"unix://{self.socket_path}"

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point the ``podman`` command at this service's storage."""
        assert self.directory is not None, "the service is not started"
        return {
            "CONTAINERS_CONF": str(self.directory / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.directory / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(self.directory / "registries.conf"),
        }

    @property
    def log_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "service.log"

    def start(self, timeout: float = 60.0) -> PodmanService:
        """Write the configuration, start the service and wait until its API answers.

        Raises:
            PodmanUnavailable: podman or the runtime is missing, or the service did not answer
                (the message has the end of its log).
        """
        podman = shutil.which("podman")
        if podman is None:
            raise PodmanUnavailable(
                "podman is not installed; install it with its runtime: apt-get install podman runc "
                "(Debian/Ubuntu; `make services` does it), or see https://podman.io/docs/installation"
            )
        if shutil.which(self.runtime) is None:
            raise PodmanUnavailable(f"the OCI runtime {self.runtime!r} is not on PATH; apt-get install {self.runtime}")
        if self._given_directory is not None:
            self.directory = Path(self._given_directory)
            self.directory.mkdir(parents=True, exist_ok=True)
        else:
            self.directory = Path(tempfile.mkdtemp(prefix="plait-podman-", dir=_short_temp_dir()))
        self._write_config()
        self.process = subprocess.Popen(
            [podman, "system", "service", "--time=0", self.url],
            stdin=subprocess.DEVNULL,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,  # a Ctrl-C in the terminal is for the tests, not the service
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self._log_tail()
                self.stop()
                raise PodmanUnavailable(f"podman system service did not start; its log:\n{log}")
            time.sleep(0.05)
        return self

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``podman ARGS`` on this service's storage; raise with its output when it fails."""
        proc = subprocess.run(
            ["podman", *args],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise PodmanUnavailable(
                f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )
        return proc

    def stop(self) -> None:
        """Stop the service, remove every container and image, and delete the folder."""
        if self.directory is None:
            return
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if (self.directory / "containers.conf").exists():
            # Removes every container (conmon processes included), image and volume, and
            # unmounts the storage.
            self.cli("system", "reset", "--force", timeout=120, check=False)
        _unmount_below(self.directory)
        if self._given_directory is None:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def __enter__(self) -> PodmanService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------------------------------

    def _write_config(self) -> None:
        d = self.directory
        assert d is not None
        ulimits = ", ".join(f'"{name}={soft}:{hard}"' for name, (soft, hard) in self.ulimits.items())
        (d / "containers.conf").write_text(
            "[containers]\n"
            f"default_ulimits = [{ulimits}]\n"
            'log_driver = "k8s-file"\n'
            "[engine]\n"
            f'runtime = "{self.runtime}"\n'
            f'cgroup_manager = "{self.cgroup_manager}"\n'
            'events_logger = "file"\n'
            f'tmp_dir = "{d}/tmp"\n'
            f'volume_path = "{d}/storage/volumes"\n'
            "[network]\n"
            f'network_config_dir = "{d}/networks"\n'
        )
        (d / "storage.conf").write_text(
            f'[storage]\ndriver = "{self.storage_driver}"\ngraphroot = "{d}/storage"\nrunroot = "{d}/run"\n'
        )
        registries = "".join(
            f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n' for registry in self.insecure_registries
        )
        (d / "registries.conf").write_text("unqualified-search-registries = []\n" + registries)

    def _answers(self) -> bool:
        import socket

        if not self.socket_path.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(str(self.socket_path))
                sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no log)"

    def __repr__(self) -> str:
        return f"<PodmanService {self.url if self.directory else '(stopped)'}>"


def _short_temp_dir() -> str:
    base = tempfile.gettempdir()
    return base if len(base) <= 60 else "/tmp"  # the socket path must fit in 107 bytes


def _unmount_below(directory: Path) -> None:
    """Unmount whatever is still mounted under ``directory`` (deepest first)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    prefix = str(directory.resolve()) + "/"
    targets = sorted(
        {m.split()[1] for m in mounts if len(m.split()) > 1 and m.split()[1].startswith(prefix)},
        key=len,
        reverse=True,
    )
    for target in targets:
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def busybox_path() -> str | None:
    """A statically linked busybox on this machine (Debian's ``busybox-static``), or ``None``."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file() and _is_static(path):
            return str(path)
    found = shutil.which("busybox")
    return found if found and _is_static(Path(found)) else None


def _is_static(path: Path) -> bool:
    """An ELF file with no program interpreter (``PT_INTERP``): it runs on an empty image."""
    try:
        data = path.read_bytes()[:65536]
    except OSError:
        return False
    if data[:4] != b"\x7fELF":
        return False
    return b"/lib64/ld-linux" not in data and b"/lib/ld-linux" not in data and b"ld-musl" not in data

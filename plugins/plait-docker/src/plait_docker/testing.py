"""A real container engine for tests: Podman's Docker-compatible service, and images built locally.

Installed as a pytest plugin (entry point ``pytest11``), so any test suite with plait-docker
installed can ask for:

- ``podman_service`` (session): a running ``PodmanService`` (``plait_docker.podman``) with its
  own storage in a temporary folder; stopped, emptied and deleted at the end of the session.
- ``docker_host`` (session): its ``DOCKER_HOST`` URL, ``unix:///tmp/plait-podman-.../podman.sock``.
- ``docker_env``: ``DOCKER_HOST`` set to it for one test (and plait-docker's clients reset).
- ``busybox_image`` (session): ``localhost/plait-test/busybox:latest``, an image built here
  ``FROM scratch`` with the machine's static busybox (``busybox-static``): ``sh``, ``echo``,
  ``sleep``... and nothing to pull.
- ``docker_registry`` (session): a ``LocalRegistry``, Debian's ``docker-registry`` on
  127.0.0.1 with a user and a password, that the service pushes to and pulls from.
- ``plait_image`` (session): ``localhost/plait-test/plait:latest``, Debian with Python 3 and
  the Plait under test in ``/opt/plait`` (``plait`` on ``PATH``), for tests that run flows in
  containers. Its Debian root filesystem (made once with ``debootstrap``) and the layer with
  Plait's dependencies are cached; each session adds the Plait under test on top (seconds):
  see ``build_plait_image``.

No registry is needed: every image is built from files on this machine (``debootstrap`` reads
Debian's package mirror once). When Podman cannot run, the tests that need it are skipped with
the reason, or fail when ``CI`` or ``PLAIT_DOCKER_REQUIRE_PODMAN`` is set, where a skip would
hide a broken set-up.

```py
def test_hello(docker_env, busybox_image):
    from plait_docker import DockerRun

    assert DockerRun(image=busybox_image, command="echo hello", network_mode="none").run() == "hello"
```
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from plait_docker.podman import PodmanService, PodmanUnavailable, busybox_path

__all__ = [
    "BUSYBOX_IMAGE",
    "PLAIT_IMAGE",
    "LocalRegistry",
    "build_busybox_image",
    "build_plait_image",
    "busybox_image",
    "cache_dir",
    "debian_rootfs",
    "docker_env",
    "docker_host",
    "docker_registry",
    "plait_image",
    "podman_service",
]

BUSYBOX_IMAGE = "localhost/plait-test/busybox:latest"
PLAIT_IMAGE = "localhost/plait-test/plait:latest"
DEBIAN_IMAGE = "localhost/plait-test/debian-python:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")


@pytest.fixture(scope="session")
def podman_service() -> Iterator[PodmanService]:
    """A running Podman service for the whole session (see the module docstring)."""
    # The port of the session's registry (``docker_registry``), reached over plain HTTP.
    registry_port = _free_port()
    service = PodmanService(insecure_registries=[f"127.0.0.1:{registry_port}"])
    service.registry_port = registry_port  # type: ignore[attr-defined]
    try:
        service.start()
    except (PodmanUnavailable, OSError, subprocess.SubprocessError) as exc:
        service.stop()
        _unavailable(f"the Podman service could not start: {exc}")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def docker_host(podman_service: PodmanService) -> str:
    """The session's Podman service as a ``DOCKER_HOST`` URL."""
    return podman_service.url


@pytest.fixture
def docker_env(docker_host: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``DOCKER_HOST`` points at the session's Podman service for this test."""
    from plait_docker.settings import clear_clients

    monkeypatch.setenv("DOCKER_HOST", docker_host)
    clear_clients()
    yield docker_host
    clear_clients()


@pytest.fixture(scope="session")
def busybox_image(podman_service: PodmanService) -> str:
    """``localhost/plait-test/busybox:latest``: ``FROM scratch`` plus the machine's static busybox."""
    try:
        return build_busybox_image(podman_service)
    except PodmanUnavailable as exc:
        _unavailable(str(exc))
        raise


@pytest.fixture(scope="session")
def plait_image(podman_service: PodmanService) -> str:
    """``localhost/plait-test/plait:latest``: Debian, Python 3 and this Plait (cached between sessions)."""
    try:
        return build_plait_image(podman_service)
    except PodmanUnavailable as exc:
        _unavailable(str(exc))
        raise


@pytest.fixture(scope="session")
def docker_registry(podman_service: PodmanService) -> Iterator[LocalRegistry]:
    """A running image registry on 127.0.0.1 (Debian's ``docker-registry``) with a user and a
    password; the session's Podman service pushes to and pulls from it over plain HTTP."""
    registry = LocalRegistry(port=podman_service.registry_port)  # type: ignore[attr-defined]
    try:
        registry.start()
    except (PodmanUnavailable, OSError, subprocess.SubprocessError, ImportError) as exc:
        registry.stop()
        _unavailable(f"the registry could not start: {exc}")
    try:
        yield registry
    finally:
        registry.stop()


class LocalRegistry:
    """``docker-registry serve`` (the CNCF distribution registry) on 127.0.0.1:``port``, with
    htpasswd authentication and its storage in a temporary folder.

    Attributes:
        address: ``127.0.0.1:PORT``, the registry part of image names pushed there.
        username, password: the one account it accepts.
    """

    def __init__(self, port: int | None = None, username: str = "plait", password: str | None = None) -> None:
        import secrets

        self.port = port or _free_port()
        self.username = username
        self.password = password or f"pw-{secrets.token_hex(10)}"
        self.directory: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalRegistry:
        import socket
        import time

        program = shutil.which("docker-registry")
        if program is None:
            raise PodmanUnavailable(
                "docker-registry is not installed; apt-get install docker-registry (`make services`)"
            )
        import bcrypt

        self.directory = Path(tempfile.mkdtemp(prefix="plait-registry-"))
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (self.directory / "htpasswd").write_text(f"{self.username}:{hashed}\n")
        (self.directory / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.directory}/data\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            f"auth:\n  htpasswd:\n    realm: plait-tests\n    path: {self.directory}/htpasswd\n"
        )
        self.process = subprocess.Popen(
            [program, "serve", str(self.directory / "config.yml")],
            stdin=subprocess.DEVNULL,
            stdout=(self.directory / "registry.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "registry.log").read_text(errors="replace")[-2000:]
                    raise PodmanUnavailable(f"docker-registry did not start on port {self.port}:\n{log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def build_busybox_image(service: PodmanService, tag: str = BUSYBOX_IMAGE) -> str:
    """Build ``tag`` from scratch with a static busybox and its applets linked in ``/bin``."""
    busybox = busybox_path()
    if busybox is None:
        raise PodmanUnavailable(
            "no statically linked busybox found (/bin/busybox); "
            "apt-get install busybox-static (`make services` does it)"
        )
    with tempfile.TemporaryDirectory(prefix="plait-busybox-") as context:
        shutil.copy2(busybox, Path(context) / "busybox")
        (Path(context) / "Dockerfile").write_text(
            "FROM scratch\n"
            "COPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
            'RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/root"]\n'
            "ENV PATH=/bin\n"
            'CMD ["/bin/sh"]\n'
        )
        service.cli("build", "--network", "none", "--tag", tag, context)
    return tag


def build_plait_image(service: PodmanService, tag: str = PLAIT_IMAGE, cache: Path | None = None) -> str:
    """Build ``tag``: Debian ``bookworm``, Python 3, and the Plait under test in ``/opt/plait``.

    Built in three layers, the first two cached in ``cache`` (default ``cache_dir()``), so that
    a session pays only for the last one (seconds) unless Plait's dependencies changed:

    1. Debian's root filesystem with ``python3`` (``debootstrap --variant=minbase``: a few
       minutes and about 60 MB from Debian's mirror, once per machine), as a tar archive;
    2. a virtual environment in ``/opt/plait`` with Plait's dependencies (wheels made here with
       ``pip wheel``, installed with ``pip install --no-index``: no network inside the build),
       saved with ``podman save`` and keyed by the core's ``pyproject.toml``;
    3. Plait itself, a wheel of the source tree under test (``pip install --no-deps``).
    """
    cache = cache or cache_dir()
    project = _core_project()
    deps = _core_dependencies(project)
    key = hashlib.sha256(repr((DEBIAN_SUITE, DEBIAN_PACKAGES, deps, sys.version_info[:2])).encode()).hexdigest()[:16]
    deps_image = f"localhost/plait-test/plait-deps:{key}"
    archive = cache / f"plait-deps-{key}.tar"
    with tempfile.TemporaryDirectory(prefix="plait-image-") as context:
        wheels = Path(context) / "wheels"
        _pip_wheel(wheels, str(project))  # Plait and its dependencies
        (plait_wheel,) = wheels.glob("plait-*.whl")
        with _locked(cache / "plait-image.lock"):
            if archive.is_file():
                service.cli("load", "--input", str(archive))
            else:
                rootfs = debian_rootfs(cache)
                service.cli("import", "--change", "CMD /bin/bash", str(rootfs), DEBIAN_IMAGE)
                (Path(context) / "Dockerfile.deps").write_text(
                    f"FROM {DEBIAN_IMAGE}\n"
                    "COPY wheels /tmp/wheels\n"
                    "RUN python3 -m venv /opt/plait \\\n"
                    " && /opt/plait/bin/pip install --quiet --no-index --no-cache-dir --find-links /tmp/wheels "
                    + " ".join(f"'{dep}'" for dep in deps)
                    + " \\\n && rm -rf /tmp/wheels\n"
                    "ENV PATH=/opt/plait/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                    "WORKDIR /root\n"
                )
                service.cli("build", "--network", "none", "--file", "Dockerfile.deps", "--tag", deps_image, context)
                partial = archive.with_suffix(".partial")
                partial.unlink(missing_ok=True)
                service.cli("save", "--output", str(partial), deps_image)
                for old in cache.glob("plait-deps-*.tar"):
                    old.unlink(missing_ok=True)
                partial.rename(archive)
        (Path(context) / "plait").mkdir()
        shutil.copy2(plait_wheel, Path(context) / "plait" / plait_wheel.name)
        (Path(context) / "Dockerfile").write_text(
            f"FROM {deps_image}\n"
            "COPY plait /tmp/plait\n"
            "RUN /opt/plait/bin/pip install --quiet --no-index --no-deps --no-cache-dir /tmp/plait/*.whl"
            " && rm -rf /tmp/plait\n"
            'CMD ["plait", "--help"]\n'
        )
        service.cli("build", "--network", "none", "--tag", tag, context)
    return tag


def debian_rootfs(cache: Path | None = None) -> Path:
    """A tar archive of Debian's root filesystem with Python 3, made once with ``debootstrap``."""
    cache = cache or cache_dir()
    key = hashlib.sha256(repr((DEBIAN_SUITE, DEBIAN_MIRROR, DEBIAN_PACKAGES)).encode()).hexdigest()[:12]
    archive = cache / f"debian-{DEBIAN_SUITE}-python-{key}.tar"
    if archive.is_file():
        return archive
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        raise PodmanUnavailable("debootstrap is not installed; apt-get install debootstrap (`make services` does it)")
    if os.geteuid() != 0:
        raise PodmanUnavailable("debootstrap needs root to build the Debian root filesystem of the Plait image")
    with tempfile.TemporaryDirectory(prefix="plait-rootfs-", dir=cache) as work:
        root = Path(work) / "rootfs"
        proc = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE,
                str(root),
                DEBIAN_MIRROR,
            ],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if proc.returncode != 0:
            log = root / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-3000:] if log.exists() else proc.stderr[-3000:]
            raise PodmanUnavailable(f"debootstrap failed ({proc.returncode}):\n{detail}")
        # Smaller and reproducible: no package lists, caches or docs.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(root / leftover, ignore_errors=True)
        partial = archive.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(archive)
    return archive


def cache_dir() -> Path:
    """Where test images are cached: ``$PLAIT_TEST_CACHE``, else ``~/.cache/plait-tests``."""
    given = os.environ.get("PLAIT_TEST_CACHE")
    base = Path(given) if given else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "plait-tests"
    base.mkdir(parents=True, exist_ok=True)
    return base


# --- helpers -----------------------------------------------------------------------------------


def _core_project() -> Path:
    import plait

    project = Path(plait.__file__).resolve().parents[2]
    if not (project / "pyproject.toml").is_file():
        raise PodmanUnavailable(f"Plait is not installed from a source tree ({plait.__file__}); cannot build its image")
    return project


def _core_dependencies(project: Path) -> list[str]:
    import tomllib

    return sorted(tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"])


def _pip_wheel(target: Path, *requirements: str) -> None:
    """Wheels of ``requirements`` and of everything they depend on, in ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "-w", str(target)]
        + list(requirements),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise PodmanUnavailable(f"pip wheel {' '.join(requirements)} failed: {proc.stderr[-3000:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One session at a time builds into the cache (several worktrees test on one machine)."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unavailable(reason: str) -> None:
    required = os.environ.get("PLAIT_DOCKER_REQUIRE_PODMAN") or os.environ.get("CI")
    if required and required.strip().lower() not in ("0", "false", "no", "off"):
        pytest.fail(reason + " (a failure, not a skip, because CI or PLAIT_DOCKER_REQUIRE_PODMAN is set)")
    pytest.skip(reason)

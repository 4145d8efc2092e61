"""The errors plait-docker raises. Messages name the task, the bad value and the fix, and never
show a secret: registry passwords and secret environment values are masked."""

from __future__ import annotations

from plait import signals
from plait.errors import PlaitError

__all__ = ["DockerConfigError", "DockerContainerError", "DockerEngineError", "DockerError"]


class DockerError(PlaitError):
    """Base class of every error plait-docker raises."""


class DockerConfigError(DockerError, ValueError):
    """A Docker task or ``[plugins.docker]`` was set up wrongly: no image, a bad volume, an
    unknown setting, a memory limit that is not a size, both ``path`` and nothing to build..."""


class DockerEngineError(DockerError, RuntimeError):
    """The container engine could not be reached, or refused a request (an unknown image, a
    failed build or push, a daemon error). The message says which engine and what it answered."""


class DockerContainerError(DockerError, signals.FAIL):
    """A container exited with a code its task does not accept.

    It is a ``plait.signals.FAIL``: the task run ends ``Failed`` with this message (the exit
    code and the last lines of output), and the state's ``result`` is this error.

    Attributes:
        exit_code: the container's exit code (137: killed, e.g. out of memory).
        output: the last lines of its output (standard output and error, in order), masked.
        container: the container's name.
        image: the image it ran.
    """

    def __init__(
        self, message: str, exit_code: int = 1, output: str = "", container: str = "", image: str = ""
    ) -> None:
        signals.FAIL.__init__(self, message)
        self.exit_code = exit_code
        self.output = output
        self.container = container
        self.image = image

    def __reduce__(self):  # picklable with its attributes (states cross process boundaries)
        return (type(self), (str(self), self.exit_code, self.output, self.container, self.image))

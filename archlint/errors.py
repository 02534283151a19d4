"""Exception hierarchy: every failure archlint reports to a user is an ArchlintError."""

from __future__ import annotations

__all__ = ["ArchlintError", "ModelLoadError", "ShapeError", "ConfigError", "RuleError"]


class ArchlintError(Exception):
    """Base class; ``str(error)`` is a complete one-line message for the user."""


class ModelLoadError(ArchlintError):
    """The model file cannot be read, parsed or trusted.

    Parameters
    ----------
    source : str
        The file (or object description) that failed.
    problem : str
        What is wrong with it, in one line.
    """

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{source}: {self.problem}")


class ShapeError(ModelLoadError):
    """Tensor shapes are unknown or inconsistent, so nothing can be computed."""


class ConfigError(ArchlintError):
    """Configuration or command-line options are invalid."""


class RuleError(ArchlintError):
    """A rule (built-in or plugin) failed to load or crashed while checking."""

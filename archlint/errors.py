"""Exception hierarchy: every failure archlint reports to a user is an ArchlintError, in one line.

:func:`one_line` is how a caught exception (torch's, onnx's) is quoted inside such a line.
"""

from __future__ import annotations

__all__ = ["ArchlintError", "ModelLoadError", "ShapeError", "ConfigError", "RuleError", "one_line", "first_line"]


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


def one_line(exc: BaseException, *, named: bool = False) -> str:
    r"""The first non-blank line of ``exc``'s message, cut to 200 characters, to quote in a one-line error.

    A message-less exception gives its class name; ``named`` puts the class name in front.

    Examples
    --------
    >>> one_line(ValueError("\n  bad shape\n  at node 3")), one_line(KeyError("x"), named=True)
    ('bad shape', "KeyError: 'x'")
    >>> one_line(RuntimeError())
    'RuntimeError'
    """
    first = first_line(exc)
    text = first or type(exc).__name__
    if named and first:
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 200 else text[:197] + "..."


def first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message, stripped and uncut (``""`` if none)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")

"""Python source locations recorded in models: pick the user's frame, find the file here.

Exporters record stack traces with the absolute paths of the machine that exported the
model. The innermost frame outside PyTorch's own package is the user's line; when its
file does not exist here (the model was exported in another checkout), the longest tail
of its path that exists under the working directory is used instead, so CI annotations
point at the repository's file.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..graph import Source

__all__ = ["source_from_trace", "trace_files", "local_source", "is_torch_internal"]

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_TORCH_PACKAGE = re.compile(r"[\\/](?:site|dist)-packages[\\/]torch[\\/]")


def is_torch_internal(path: str, torch_dir: str | None = None) -> bool:
    """Whether ``path`` is a file of the installed torch package (not the user's code)."""
    return bool(_TORCH_PACKAGE.search(path)) or bool(torch_dir and path.startswith(torch_dir))


#: Deepest tail of a recorded path tried against the working directory (repositories are shallower).
MAX_REMAP_PARTS = 32


def local_source(file: str, line: int) -> Source:
    """``Source(file, line)``, with ``file`` mapped to an existing path under the working
    directory when the recorded one does not exist here."""
    return Source(_local_file(file, os.getcwd()), line)


@lru_cache(maxsize=4096)
def _local_file(file: str, cwd: str) -> str:
    """``file`` if it exists, else the longest existing tail of it under ``cwd`` (``cwd`` keys the cache).

    Models repeat a few files in every node's stack trace; a hostile one may give each node
    another path of thousands of parts, so at most ``MAX_REMAP_PARTS`` tails are tried.
    """
    try:
        if Path(file).exists():
            return file
        parts = (PureWindowsPath(file) if "\\" in file else PurePosixPath(file)).parts
        for start in range(max(1, len(parts) - MAX_REMAP_PARTS), len(parts)):
            tail = Path(cwd, *parts[start:])
            if tail.is_file():
                return Path(*parts[start:]).as_posix()
    except (OSError, ValueError):
        pass  # unreadable or odd path: keep what the model says
    return file


def trace_files(trace: str) -> list[str]:
    """The files named by a recorded stack trace (``File "...", line N`` lines), innermost last."""
    return [file for file, _ in _FRAME.findall(trace)]


def source_from_trace(trace: str, torch_dir: str | None = None) -> Source | None:
    """The innermost user frame of a recorded stack trace (``File "...", line N`` lines).

    Examples
    --------
    >>> trace = ('File "/nonexistent/site-packages/torchvision/models/resnet.py", line 285, in forward\\n'
    ...          'File "/nonexistent/site-packages/torch/nn/modules/conv.py", line 548, in forward')
    >>> str(source_from_trace(trace))
    '/nonexistent/site-packages/torchvision/models/resnet.py:285'
    """
    frames = [(f, int(line)) for f, line in _FRAME.findall(trace or "")]
    user = [fr for fr in frames if not is_torch_internal(fr[0], torch_dir)]
    return local_source(*user[-1]) if user else None

"""Keeping torch quiet: its warnings, log lines, prints and stderr dumps silenced."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

__all__ = ["quiet_torch"]


def quiet_torch():
    """Context manager that silences torch's warnings, log lines and prints (errors stay one line).

    Standard error is captured too: a failing ``torch.export`` prints the whole partial graph
    there (``print(e.partial_fx_graph, file=sys.stderr)``) before raising, and a run that falls
    back to linting part by part must not spill it into CI logs.
    """
    return _Quiet()


class _Quiet(contextlib.AbstractContextManager):
    def __enter__(self):
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        self._levels = {}
        for name in ("torch", "torch._dynamo", "torch.export", "torch.fx", "torch._export"):
            log = logging.getLogger(name)
            self._levels[name] = log.level
            log.setLevel(logging.CRITICAL)
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        self._stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        return self

    def __exit__(self, *exc):
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._stack.close()
        return False


"""Run the archlint command line many times, each in its own forked process with limits.

A fresh interpreter per case costs about a second of imports; this worker imports archlint
once, then forks a child per request. The child sets an address-space limit, runs
``archlint.cli.main(args)`` with stdout/stderr going to files, and exits; the parent kills
it at the timeout. Requests and replies are JSON lines on stdin/stdout:

    {"args": [...], "cwd": "...", "timeout": 60, "memory": 2147483648}
    -> {"rc": 2, "stdout": "...", "stderr": "...", "timed_out": false, "signal": 0, "seconds": 0.3}
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import tempfile
import time


def _child(request: dict, out_path: str, err_path: str) -> None:
    memory = int(request.get("memory", 2 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    for fd, path in ((1, out_path), (2, err_path)):
        handle = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    if request.get("cwd"):
        os.chdir(request["cwd"])
    code = 70
    try:
        from archlint.cli import main

        main(list(request["args"]))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # a traceback escaping main(): show it, exit with a marker code
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def run(request: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="archlint-fork-") as tmp:
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        for path in (out_path, err_path):
            open(path, "w").close()
        sys.stdout.flush()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _child(request, out_path, err_path)
        deadline = start + float(request.get("timeout", 60))
        timed_out = False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.perf_counter() > deadline:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                timed_out = True
                break
            time.sleep(0.005)
        seconds = time.perf_counter() - start
        with open(out_path, encoding="utf-8", errors="replace") as fh:
            stdout = fh.read()
        with open(err_path, encoding="utf-8", errors="replace") as fh:
            stderr = fh.read()
    return {"rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
            "stdout": stdout, "stderr": stderr, "timed_out": timed_out, "seconds": seconds}


def main() -> None:
    # imported once here, shared by every forked child
    import archlint.cli  # noqa: F401
    import archlint.engine.run  # noqa: F401
    from archlint.engine.registry import discover_rules

    discover_rules(())
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()

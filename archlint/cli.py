"""Command line: the only module that prints or chooses an exit code.

Exit codes: 0 clean, 1 findings at or above ``--fail-on``, 2 usage, input or config error
(one ``archlint: error: ...`` line on stderr, nothing written to ``--output``).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import click

from . import __version__
from .errors import ArchlintError, ConfigError, RuleError
from .gc_pause import gc_paused
from .report import Severity

__all__ = ["main", "run"]

FORMATS = ("text", "json", "sarif", "github", "markdown", "html")


def _fail(message: str) -> NoReturn:
    click.echo(f"archlint: error: {' '.join(str(message).split())}", err=True)
    sys.exit(2)


def _write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, then rename)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"--output {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_config(config_path: str | None, isolated: bool):
    from .engine.config import Config, find_config, load_config

    if isolated:
        return Config()
    if config_path:
        return load_config(config_path)
    found = find_config(Path.cwd())
    return load_config(found) if found else Config()


def _parse_options(values: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set {item!r}: expected RULE.OPTION=VALUE, e.g. --set deep-chain-without-skip."
                              "max-plain-depth=10")
        options[name.strip()] = value.strip()
    return options


def _expand(paths: tuple[str, ...]) -> list[str]:
    """Model files: files as given, folders searched recursively for ``*.onnx``; duplicates dropped."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            inside = sorted(str(p) for p in Path(path).rglob("*.onnx") if p.is_file())
            if not inside:
                raise ConfigError(f"{path}: folder contains no .onnx files")
            found.extend(inside)
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def _lint_one(model: str, config, unsafe_load_pickle: bool = False, collect: bool = False) -> tuple[str, object]:
    """Lint one model; never raises. ``("ok", Report)``, ``("config", message)`` or ``("error", message)``.

    Module-level so that worker processes can run it. ``collect`` frees the run's reference
    cycles afterwards, for a process that goes on to another model with the collector paused.
    """
    from .engine.run import lint

    try:
        return "ok", lint(model, config, unsafe_load_pickle=unsafe_load_pickle)
    except ConfigError as exc:  # the same for every model: reported once
        return "config", str(exc)
    except ArchlintError as exc:
        message = " ".join(str(exc).split())
    except RecursionError:
        message = "model graph too deeply nested to analyse"
    except MemoryError:
        message = "out of memory while analysing the model"
    except Exception as exc:  # a bug in archlint
        message = f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())}); please report it"
    finally:
        if collect:
            gc.collect()
    return "error", message if message.startswith(model) else f"{model}: {message}"


def _show_progress(count: int) -> bool:
    """A progress bar only for several models, on a terminal, outside CI."""
    return count > 1 and sys.stderr.isatty() and not os.environ.get("CI")


def _lint_all(models: list[str], config, jobs: int, unsafe_load_pickle: bool = False) -> list[tuple[str, object]]:
    """``_lint_one`` of every model, in input order; ``jobs`` > 1 uses that many processes."""
    results: list[tuple[str, object] | None] = [None] * len(models)
    with click.progressbar(length=len(models), label="linting", file=sys.stderr,
                           show_pos=True) if _show_progress(len(models)) else _NoBar() as bar:
        if jobs <= 1 or len(models) == 1:
            for i, model in enumerate(models):
                results[i] = _lint_one(model, config, unsafe_load_pickle, collect=i < len(models) - 1)
                bar.update(1)
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            pool = ProcessPoolExecutor(max_workers=min(jobs, len(models)))
            try:
                futures = {pool.submit(_lint_one, model, config, unsafe_load_pickle, True): i
                           for i, model in enumerate(models)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update(1)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
    return results  # type: ignore[return-value]


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _split(values: tuple[str, ...]) -> tuple[str, ...] | None:
    codes = tuple(c.strip() for v in values for c in v.split(",") if c.strip())
    return codes or None


def _model_options(command):
    """Flags that choose rules, options, config and input shapes: shared by check and diff."""
    options = [
        click.option("--input-shape", "input_shape", multiple=True, metavar="[NAME:]DIMS",
                     help="Pin input dimensions, e.g. 1,3,224,224 or image:1,3,224,224 (repeatable)."),
        click.option("--select", multiple=True, metavar="CODES", help="Rules to run: codes, prefixes, names or ALL."),
        click.option("--ignore", multiple=True, metavar="CODES", help="Rules to skip."),
        click.option("--set", "option_values", multiple=True, metavar="RULE.OPTION=VALUE",
                     help="Set a rule option; RULE is the rule's code or name (see --explain)."),
        click.option("--fail-on", type=click.Choice([s.value for s in Severity]), default=None,
                     help="Lowest severity of a finding (for diff: of a new finding) that makes the exit "
                          "code 1 [default: warning]."),
        click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings."),
        click.option("--config", "config_path", metavar="FILE",
                     help="Config file (pyproject.toml or setup.cfg); default: the nearest one."),
        click.option("--isolated", is_flag=True, help="Ignore all configuration files."),
        click.option("--rules-path", multiple=True, metavar="DIR", help="Also load rules from .py files in DIR."),
        click.option("--unsafe-load-pickle", "unsafe_load_pickle", is_flag=True,
                     help="Allow torch.save(model) pickles. UNSAFE: loading a pickle runs code from the file."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _config_from_flags(flags: dict):
    """The config file's settings overridden by the command-line flags of ``_model_options``."""
    from .engine.config import parse_input_shapes

    config = _load_config(flags["config_path"], flags["isolated"])
    return config.override(
        select=_split(flags["select"]), ignore=_split(flags["ignore"]),
        options={**_parse_options(flags["option_values"]), **_rule_flag_values(flags)} or None,
        fail_on=Severity(flags["fail_on"]) if flags["fail_on"] else None,
        input_shapes=parse_input_shapes(flags["input_shape"]) if flags["input_shape"] else None,
        rules_paths=(config.rules_paths + tuple(flags["rules_path"])) if flags["rules_path"] else None)


#: Command-line parameter name -> qualified option (``CODE.name``) of each rule-option flag.
_RULE_FLAGS: dict[str, str] = {}


def _rule_flag_params(taken: set[str]) -> list[click.Option]:
    """A ``--NAME VALUE`` flag for each option an installed rule declares with ``flag=True``.

    Rules loaded with ``--rules-path`` are not known before the flags are parsed; their
    options are set with ``--set``. A flag that clashes with another is a one-line error.
    """
    from .engine.registry import discover_rules

    params, owners = [], {}
    for rule in discover_rules():
        for opt in rule.options:
            if not opt.flag:
                continue
            flag = f"--{opt.name}"
            if flag in taken or flag in owners:
                raise RuleError(f"rule {rule.code}: option flag {flag} clashes with "
                                f"{owners.get(flag, 'a built-in flag')}; set it with "
                                f"--set {rule.code}.{opt.name}=VALUE")
            owners[flag] = f"{rule.code}.{opt.name}"
            param = f"rule_flag_{len(_RULE_FLAGS)}"
            _RULE_FLAGS[param] = owners[flag]
            params.append(click.Option([flag, param], metavar=opt.metavar, default=None,
                                       help=f"{opt.help} [{owners[flag]}]"))
    return params


class _RuleFlagsCommand(click.Command):
    """A command that also offers the rules' option flags, found when it is first parsed or helped.

    A broken or clashing rule plugin leaves the flags out: ``--version`` still answers and
    ``--help`` still prints (naming the plugin in one line on stderr); any other use of the
    command fails with the plugin's one-line error.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rule_flags: list[click.Option] | None = None  # found on first use
        self._rule_error: RuleError | None = None

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        if self._rule_flags is None:
            try:
                self._rule_flags = _rule_flag_params({opt for p in params for opt in getattr(p, "opts", ())})
            except RuleError as exc:
                self._rule_flags, self._rule_error = [], exc
        return params[:-1] + self._rule_flags + params[-1:]  # the help option stays last

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError:
            if self._rule_error is not None:
                raise self._rule_error from None  # its flags may be the unknown ones
            raise

    def get_help(self, ctx: click.Context) -> str:
        text = super().get_help(ctx)
        if self._rule_error is not None:
            click.echo(f"archlint: warning: rule-option flags left out: {self._rule_error}", err=True)
        return text

    def invoke(self, ctx: click.Context):
        if self._rule_error is not None:
            raise self._rule_error
        return super().invoke(ctx)


def _review_options(command):
    """Counting-convention flags, shared by the check and diff commands (rule-option flags come with the command)."""
    command = click.option("--count-include", "count_include", metavar="KINDS", default=None,
                           help="Add to the count: bias, norm, activation, pooling, elementwise, resize, "
                                "all (comma-separated).")(command)
    command = click.option("--count", "count_unit", type=click.Choice(["macs", "flops"]), default=None,
                           help="Unit of summary.count: macs (default) or flops (= 2 x MACs).")(command)
    return command


def _rule_flag_values(flags: dict) -> dict[str, str]:
    return {_RULE_FLAGS[param]: value for param, value in flags.items()
            if param in _RULE_FLAGS and value is not None}


def _convention(flags: dict):
    """The counting convention asked for, or None for the headline one."""
    if flags.get("count_unit") is None and flags.get("count_include") is None:
        return None
    from .analyses.macs import Convention

    try:
        return Convention.parse(flags.get("count_unit") or "macs", flags.get("count_include") or "")
    except ValueError as exc:
        raise ConfigError(f"--count/--count-include: {exc}") from None


def _with_convention(report, convention):
    if convention is None:
        return report
    report = report.with_count(convention)
    count = report.summary.count
    from dataclasses import replace

    note = f"count: {count['total']:,} ({count['convention']})"
    return replace(report, summary=replace(report.summary, notes=report.summary.notes + (note,)))


@click.command(cls=_RuleFlagsCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("models", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Output format.")
@click.option("--output", "-o", metavar="FILE", help="Write the report to FILE instead of stdout.")
@click.option("--layers", is_flag=True, help="Text format: also print the per-layer table.")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=1, show_default=True, metavar="N",
              help="Lint models in N processes (0: one per CPU).")
@_model_options
@click.option("--list-rules", is_flag=True, help="List the available rules and exit.")
@click.option("--explain", metavar="CODE", help="Show the documentation of one rule and exit.")
@click.option("--baseline", "baseline_path", metavar="REPORT.json",
              help="Silence the findings this earlier JSON report holds; only new ones count.")
@click.option("--write-baseline", "write_baseline", metavar="FILE",
              help="Also write the JSON report (all findings) to FILE, for --baseline later.")
@_review_options
@click.version_option(__version__, prog_name="archlint")
def cli(models, fmt, output, layers, jobs, list_rules, explain, **flags) -> None:
    """Lint the architecture of CNN models (MODELS: .onnx files or folders searched for them).

    Prints findings and a summary (MACs, parameters, receptive field); --layers adds the
    per-layer table. Exit code 0: clean; 1: findings at or above --fail-on; 2: error.

    PyTorch models (need --input-shape unless the program fixes it): a .pt2 file saved by
    torch.export.save, a TorchScript file (torch.jit.save), or pkg.module:factory, which
    imports pkg.module and calls factory() -- naming it is the opt-in to running that code;
    the factory returns an nn.Module or (module, input_shape). Whole-model pickles
    (torch.save(model)) are refused: loading one runs code from the file.

    Compare two models with: archlint diff BASE HEAD (see archlint diff --help).
    """
    from .engine.registry import discover_rules
    from .reports import RENDERERS

    config = _config_from_flags(flags)
    convention = _convention(flags)
    if list_rules or explain:
        from .reports.rules import render_rule, render_rule_list

        rules = discover_rules(config.rules_paths)
        if explain:
            match = [r for r in rules if explain in (r.code, r.name)]
            if not match:
                raise ConfigError(f"--explain {explain}: no rule with that code or name")
            click.echo(render_rule(match[0], fmt), nl=False)
        else:
            click.echo(render_rule_list(rules, fmt), nl=False)
        return
    if not models:
        raise click.UsageError("no model given; usage: archlint MODEL.onnx [MODEL...]")
    paths = _expand(models)
    baselines = None
    if flags.get("baseline_path"):
        from .engine.baseline import load_baseline

        baselines = [load_baseline(flags["baseline_path"], p) for p in paths]
        if len(paths) == 1:  # the baseline report is the reference of options that read one
            config = config.override(reference=baselines[0].summary)
    results = _lint_all(paths, config, jobs or os.cpu_count() or 1, flags["unsafe_load_pickle"])
    for kind, value in results:
        if kind == "config":
            raise ConfigError(value)
    errors = [value for kind, value in results if kind == "error"]
    if errors:
        for message in errors:
            click.echo(f"archlint: error: {message}", err=True)
        sys.exit(2)
    reports = [_with_convention(value, convention) for _, value in results]
    if flags.get("write_baseline"):
        _write(flags["write_baseline"], RENDERERS["json"](reports))
    if baselines is not None:
        from .engine.baseline import apply_baseline

        reports = [apply_baseline(r, b) for r, b in zip(reports, baselines)]
    text = RENDERERS[fmt](reports, show_layers=layers)
    if output:
        _write(output, text)
    else:
        click.echo(text, nl=False)
    failing = any(r.failing(config.fail_on) for r in reports)
    sys.exit(1 if failing and not flags["exit_zero"] else 0)


@click.command("diff", cls=_RuleFlagsCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("base")
@click.argument("head")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text",
              show_default=True, help="Output format.")
@click.option("--output", "-o", metavar="FILE", help="Write the diff to FILE instead of stdout.")
@_model_options
@_review_options
def diff_cli(base, head, fmt, output, **flags) -> None:
    """Compare two models (BASE, HEAD: anything the check command accepts).

    Prints totals before/after (MACs, params, receptive field, output shape), layers added,
    removed and changed (matched by module path), and findings new/fixed/unchanged.
    Exit code 0: no new finding at or above --fail-on; 1: new findings; 2: error.
    """
    from .diff import diff_models
    from .reports.diff import DIFF_RENDERERS

    config = _config_from_flags(flags)
    convention = _convention(flags)
    for model in (base, head):
        if not os.path.exists(model) and ":" not in model:
            raise ConfigError(f"{model}: no such file")
    result = diff_models(base, head, config, unsafe_load_pickle=flags["unsafe_load_pickle"])
    if convention is not None:
        from dataclasses import replace

        result = replace(result, base=_with_convention(result.base, convention),
                         head=_with_convention(result.head, convention))
    text = DIFF_RENDERERS[fmt](result)
    if output:
        _write(output, text)
    else:
        click.echo(text, nl=False)
    sys.exit(1 if result.failing(config.fail_on) and not flags["exit_zero"] else 0)


class _DefaultGroup(click.Group):
    """A group whose first argument, unless it names a subcommand, belongs to the ``check`` command."""

    def parse_args(self, ctx, args):
        if not args or args[0] not in self.commands:
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """archlint: architecture linter for CNNs. ``archlint MODEL...`` checks models; ``archlint diff BASE HEAD``."""


app.add_command(cli, "check")
app.add_command(diff_cli, "diff")


@gc_paused
def _run(argv: list[str] | None) -> None:
    """The command line, with the cyclic collector paused throughout: a run is one short process
    (cycles are freed between models, the rest by the process ending; see :mod:`.gc_pause`)."""
    app.main(args=argv, prog_name="archlint", standalone_mode=False)


def main(argv: list[str] | None = None) -> None:
    """The command line: runs it and turns every error into one line and exit 2 (``SystemExit``)."""
    try:
        _run(argv)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted")
    except click.UsageError as exc:
        _fail(exc.format_message())
    except click.ClickException as exc:
        _fail(exc.format_message())
    except ArchlintError as exc:
        _fail(str(exc))
    except RecursionError:
        _fail("model graph too deeply nested to analyse")
    except MemoryError:
        _fail("out of memory while analysing the model")
    except KeyboardInterrupt:
        _fail("interrupted")
    except SystemExit:
        raise
    except Exception as exc:  # a bug in archlint: still one line, never a traceback
        _fail(f"internal error ({type(exc).__name__}: {exc}); please report it")
    sys.exit(0)


def run(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point: :func:`main`, then the process ends at once.

    Python's own shutdown would free every object the run made (graph, report, imported
    modules) and walk them in a last full collection, only to hand memory back that the
    operating system reclaims anyway: about 15 ms of a run, on small models as on large
    ones. Exit handlers still run and the standard streams are flushed first; only the
    teardown is skipped.
    """
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # what the interpreter does with sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (archlint ... | head): nothing more to deliver
            pass
    atexit._run_exitfuncs()  # logging's flush, temporary files' cleanup: what the shutdown would run
    os._exit(code)


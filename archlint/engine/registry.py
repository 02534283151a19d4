"""Rule discovery: the ``archlint.rules`` entry-point group and ``--rules-path`` folders.

Each entry point maps a code prefix to a module (``AL1 = archlint.rules.skip``); the
module's ``get_rules()`` returns its rule classes. Built-in rules come in through the same
door as plugins. Codes must start with the entry point's prefix and be unique.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType

from ..errors import RuleError, one_line
from ..rule import Rule

__all__ = ["discover_rules", "GROUP"]

GROUP = "archlint.rules"


def _rules_of(module: ModuleType, origin: Callable[[], str], prefix: str | None) -> list[type[Rule]]:
    getter = getattr(module, "get_rules", None)
    if getter is None:
        raise RuleError(f"rule plugin {origin()}: module {module.__name__} has no get_rules()")
    rules = list(getter())
    for rule in rules:
        if not (isinstance(rule, type) and issubclass(rule, Rule)):
            raise RuleError(f"rule plugin {origin()}: get_rules() returned {rule!r}, not a Rule subclass")
        if prefix and not rule.code.startswith(prefix):
            raise RuleError(f"rule plugin {origin()}: rule {rule.code} does not start with its "
                            f"entry-point prefix {prefix}")
    return rules


def _entry_point_origin(ep: EntryPoint) -> Callable[[], str]:
    """How an error names the plugin; its package name is read (parsing metadata) only then."""
    def origin() -> str:
        return f"{ep.name} = {ep.value} (package {ep.dist.name if ep.dist is not None else '?'})"
    return origin


@functools.cache
def _entry_point_rules() -> tuple[tuple[Callable[[], str], tuple[type[Rule], ...]], ...]:
    """The installed plugins' rules, loaded once per process (the CLI asks for its flags, then the run)."""
    found = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        origin = _entry_point_origin(ep)
        try:
            module = ep.load()
        except Exception as exc:
            raise RuleError(f"rule plugin {origin()} failed to load: {one_line(exc, named=True)}") from None
        found.append((origin, tuple(_rules_of(module, origin, ep.name))))
    return tuple(found)


def _from_folder(folder: Path) -> list[tuple[Callable[[], str], list[type[Rule]]]]:
    if not folder.is_dir():
        raise RuleError(f"--rules-path {folder}: not a folder")
    found = []
    for file in sorted(folder.glob("*.py")):
        origin = str(file)
        name = f"archlint_local_rules.{file.stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise RuleError(f"rule file {origin} failed to load: {one_line(exc, named=True)}") from None
        if hasattr(module, "get_rules"):
            named = functools.partial(str, origin)
            found.append((named, _rules_of(module, named, None)))
    return found


def discover_rules(rules_paths: tuple[str | Path, ...] = ()) -> list[type[Rule]]:
    """All rule classes, sorted by code; raises :class:`RuleError` on a broken or clashing plugin."""
    by_code: dict[str, tuple[type[Rule], Callable[[], str]]] = {}
    by_name: dict[str, str] = {}
    sources = [(origin, list(rules)) for origin, rules in _entry_point_rules()]
    for path in rules_paths:
        sources.extend(_from_folder(Path(path)))
    for origin, rules in sources:
        for rule in rules:
            if rule.code in by_code and by_code[rule.code][0] is not rule:
                raise RuleError(f"rule code {rule.code} is defined twice: by {by_code[rule.code][1]()} and {origin()}")
            if rule.name in by_name and by_name[rule.name] != rule.code:
                raise RuleError(f"rule name {rule.name} is used by both {by_name[rule.name]} and {rule.code}")
            by_code[rule.code] = (rule, origin)
            by_name[rule.name] = rule.code
    return [by_code[c][0] for c in sorted(by_code)]

"""Configuration: ``[tool.archlint]`` in pyproject.toml, ``[archlint]`` in setup.cfg, or ``--config``.

Keys (kebab-case): ``select``, ``ignore``, ``fail-on``, ``input-shape``,
``per-node-ignores`` (layer-name glob -> codes), ``rules-path``, and rule options
qualified by their rule's code or name (``RULE.option = 10``, or a ``[tool.archlint.RULE]``
table in TOML; see :mod:`.options`). Command-line flags override the file.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..report import Severity

__all__ = ["Config", "load_config", "find_config", "config_from_mapping", "parse_input_shapes"]


@dataclass(frozen=True)
class Config:
    """Resolved settings for one run.

    ``options`` holds rule options by the name the user wrote (``RULE.option``, or a
    deprecated flat name), in the order given; ``reference`` is the summary (as in the JSON
    report) of the report the run is compared against, which options declared with a
    ``reference`` field read.
    """

    select: tuple[str, ...] = ("ALL",)
    ignore: tuple[str, ...] = ()
    fail_on: Severity = Severity.WARNING
    input_shapes: Mapping[str, tuple[int, ...]] | tuple[int, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    per_node_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rules_paths: tuple[str, ...] = ()
    reference: Mapping[str, Any] | None = None
    source: str | None = None

    def override(self, **changes: Any) -> "Config":
        """A copy with the given non-None settings replaced (``options`` are merged)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "options" in changes:  # merged; the new ones last, since later settings win
            new = changes["options"]
            changes["options"] = {**{k: v for k, v in self.options.items() if k not in new}, **new}
        return replace(self, **changes)


def parse_input_shapes(values: str | Sequence[str]) -> Mapping[str, tuple[int, ...]] | tuple[int, ...]:
    """Parse ``1,3,224,224`` or ``NAME:1,3,224,224`` (several separated by ``;`` or given as a list).

    Examples
    --------
    >>> parse_input_shapes("1,3,224,224")
    (1, 3, 224, 224)
    >>> parse_input_shapes(["image:1,3,64,64", "mask:1,1,64,64"])
    {'image': (1, 3, 64, 64), 'mask': (1, 1, 64, 64)}
    """
    items = [values] if isinstance(values, str) else list(values)
    parts = [p.strip() for item in items for p in str(item).split(";") if p.strip()]
    named: dict[str, tuple[int, ...]] = {}
    bare: list[tuple[int, ...]] = []
    for part in parts:
        name, _, dims = part.rpartition(":")
        try:
            shape = tuple(int(d) for d in re.split(r"[,x ]+", dims.strip()) if d)
        except ValueError:
            raise ConfigError(f"input shape {part!r}: expected comma-separated integers like 1,3,224,224") from None
        if not shape or any(d <= 0 for d in shape):
            raise ConfigError(f"input shape {part!r}: dimensions must be positive integers")
        if name:
            named[name.strip()] = shape
        else:
            bare.append(shape)
    if bare and (named or len(bare) > 1):
        raise ConfigError("give NAME:DIMS for every input when there are several")
    return bare[0] if bare else named


def _codes(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in re.split(r"[,\s]+", value) if v.strip())
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(f"'{key}' must be a list of rule codes, prefixes or names, got {value!r}")


def _per_node(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    if isinstance(value, Mapping):
        return {str(k): _codes(v, "per-node-ignores") for k, v in value.items()}
    if isinstance(value, str):  # setup.cfg: one "glob: CODES" per line
        result = {}
        for line in value.splitlines():
            if not line.strip():
                continue
            glob, sep, codes = line.rpartition(":")
            if not sep or not glob.strip():
                raise ConfigError(f"{where}: per-node-ignores line {line.strip()!r} is not 'LAYER-GLOB: CODES'")
            result[glob.strip()] = _codes(codes, "per-node-ignores")
        return result
    raise ConfigError(f"{where}: per-node-ignores must map layer-name globs to codes")


def config_from_mapping(data: Mapping[str, Any], where: str) -> Config:
    config = Config(source=where)
    options = {}
    for key, value in data.items():
        key = key.replace("_", "-")
        if key == "select":
            config = config.override(select=_codes(value, key))
        elif key == "ignore":
            config = config.override(ignore=_codes(value, key))
        elif key == "fail-on":
            try:
                config = config.override(fail_on=Severity(str(value).strip().lower()))
            except ValueError:
                raise ConfigError(f"{where}: fail-on must be info, warning or error, got {value!r}") from None
        elif key == "input-shape":
            config = config.override(input_shapes=parse_input_shapes(value if isinstance(value, (str, list))
                                                                     else str(value)))
        elif key == "per-node-ignores":
            config = config.override(per_node_ignores=_per_node(value, where))
        elif key == "rules-path":
            paths = [value] if isinstance(value, str) else list(value)
            base = Path(where).parent
            config = config.override(rules_paths=tuple(str(base / p.strip()) for p in paths if p.strip()))
        elif isinstance(value, Mapping):  # TOML: [tool.archlint.RULE] table or RULE.option dotted keys
            for name, item in value.items():
                options[f"{key}.{str(name).replace('_', '-')}"] = item.strip() if isinstance(item, str) else item
        else:
            options[key] = value.strip() if isinstance(value, str) else value
    return config.override(options=options)


def _parsers():
    """The TOML and ini parser modules, imported only when a config file is there to read."""
    import configparser

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib, configparser


def load_config(path: str | Path) -> Config:
    """Read ``[tool.archlint]`` from a ``.toml`` file or ``[archlint]`` from an ini-style file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: config file not found")
    tomllib, configparser = _parsers()
    try:
        if file.suffix == ".toml":
            data = tomllib.loads(file.read_text(encoding="utf-8"))
            section = data.get("tool", {}).get("archlint")
            if section is None and file.name != "pyproject.toml":
                section = data.get("archlint", data)
            return config_from_mapping(section or {}, str(file))
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(file, encoding="utf-8")
        section = parser["archlint"] if parser.has_section("archlint") else {}
        return config_from_mapping(dict(section), str(file))
    except (tomllib.TOMLDecodeError, configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot parse config: {' '.join(str(exc).split())}") from None


def find_config(start: str | Path = ".") -> Path | None:
    """The nearest pyproject.toml with ``[tool.archlint]`` or setup.cfg with ``[archlint]``."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            tomllib, _ = _parsers()
            try:
                if "archlint" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}):
                    return pyproject
            except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                raise ConfigError(f"{pyproject}: cannot parse TOML") from None
        setup_cfg = folder / "setup.cfg"
        if setup_cfg.is_file():
            _, configparser = _parsers()
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read(setup_cfg, encoding="utf-8")
            except configparser.Error as exc:
                raise ConfigError(f"{setup_cfg}: cannot parse: {' '.join(str(exc).split())}") from None
            if parser.has_section("archlint"):
                return setup_cfg
    return None

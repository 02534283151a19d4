"""The package reads as rooms: every module says its job at the top, and a name means one thing."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import archlint
import archlint.rules

PACKAGES = (archlint, archlint.rules)  # the built-in rules live in rules/, installed as archlint.rules


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return list(dict.fromkeys(names))  # an installed tree holds archlint.rules under archlint


@pytest.mark.parametrize("name", _modules())
def test_every_module_opens_with_a_docstring_saying_its_job(name):
    doc = importlib.import_module(name).__doc__
    assert doc and doc.strip(), f"{name} has no opening docstring"


@pytest.mark.parametrize("name", [n for n in _modules() if hasattr(importlib.import_module(n), "__path__")])
def test_no_package_attribute_hides_a_submodule(name):
    """``archlint.analyses.summary_field`` was both a module and, once the package imported it, a function."""
    package = importlib.import_module(name)
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{name}.{info.name}")
        attribute = getattr(package, info.name)
        assert isinstance(attribute, types.ModuleType) and attribute is module, \
            f"{name}.{info.name} names both a module and {attribute!r}"

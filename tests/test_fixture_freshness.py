"""Committed fixture models match their specs: none was built from an older spec file.

Dynamo exports record the spec's line numbers (the Python source of each layer), and any
edit to a spec may change a model; ``fixtures/build_fixtures.py`` records the SHA-256 of
the spec each fixture was built from in ``fixtures/models/built_from.json``.
"""

from __future__ import annotations

from conftest import load_build_script

BUILD = load_build_script()


def test_every_fixture_was_built_from_its_current_spec():
    recorded = BUILD.built_from()
    stale = []
    for name, (_, file) in sorted(BUILD.all_specs().items()):
        entry = recorded.get(name)
        if entry != {"spec": file.name, "sha256": BUILD.spec_digest(file)}:
            stale.append(name)
    assert not stale, (f"fixtures built from an older spec (or never built): {stale}; "
                       f"run python fixtures/build_fixtures.py --force {' '.join(stale)}")


def test_no_record_names_a_fixture_that_no_spec_defines():
    assert set(BUILD.built_from()) <= set(BUILD.all_specs())

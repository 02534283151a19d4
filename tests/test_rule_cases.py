"""Every case of every ``fixtures/cases/*.yml`` file, on every exported variant of its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from archlint.testing import case_models, load_cases, run_case

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"


def _params():
    for file in sorted((ROOT / "fixtures" / "cases").glob("*.yml")):
        for case in load_cases(file):
            for variant, path in case_models(case, MODELS):
                marks = [pytest.mark.skip(reason=case.skip)] if case.skip else []
                yield pytest.param(case, path, id=f"{case.rule}-{case.name}-{variant}", marks=marks)


@pytest.mark.parametrize(("case", "path"), list(_params()))
def test_rule_case(case, path):
    run_case(case, path)

"""The JSON text of the machine formats: valid JSON equal to json.dumps' document, records one per line."""

from __future__ import annotations

import json
import math

from hypothesis import example, given
from hypothesis import strategies as st

from archlint import lint
from archlint.reports import RENDERERS
from archlint.reports.json_text import dumps
from conftest import fixture_path

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_DOCS = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text() | st.integers() | st.booleans(), inner, max_size=4), max_leaves=30)


def _finite(value):
    """The document as JSON can hold it: floats that are not finite become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


@given(_DOCS, st.integers(0, 5))
@example({"true": None, True: None}, 1)  # two keys written alike: the document has a duplicate key
@example({"caf\u00e9 \U0001f600": ["\ud800", 2 ** 70, float("inf")], "x": [float("-inf")]}, 2)  # escapes;
# what orjson refuses (a lone surrogate, an integer beyond 64 bits) next to a float JSON cannot hold
def test_text_encodes_the_document_as_json_dumps_does(doc, expand):
    text = dumps(doc, expand)
    assert text.endswith("\n") and text.isascii() and "Infinity" not in text
    # parsed as (key, value) pairs, so keys that json.dumps writes alike (True and "true") stay apart
    ours, theirs = (json.loads(t, object_pairs_hook=list) for t in (text, json.dumps(_finite(doc))))
    assert json.dumps(ours) == json.dumps(theirs)  # same keys, same order, same values (true is not 1)


def test_json_report_has_one_layer_and_one_finding_per_line():
    report = lint(fixture_path("example_cnn_dynamo.onnx"))
    text = RENDERERS["json"]([report], show_layers=True)
    assert json.loads(text) == json.loads(json.dumps(report.to_dict()))
    records = [json.loads(line.rstrip(",")) for line in text.splitlines() if line.startswith("    {")]
    assert records == report.to_dict()["findings"] + report.to_dict()["layers"]

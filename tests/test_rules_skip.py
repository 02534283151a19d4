"""AL1xx (depth without skip connections): plain chains on hand-built graphs, scaling, torchvision models."""

from __future__ import annotations

import random

import pytest

from archlint.api import Config, Graph, Layer, Op, lint, plain_chains, weighted_depths
from archlint.frontends import load_graph
from archlint.rules.skip import DeepChainWithoutSkip, get_rules

from conftest import count_calls, fixture_path


class _G:
    """A graph built by hand: ``add(name, op, *inputs)``; outputs are the sinks unless given."""

    def __init__(self):
        self.g = Graph(model="hand-built", inputs=["x"], outputs=[], unsupported_ops={})
        self.g.add_node("x", layer=Layer("x", Op.INPUT, "input"))

    def add(self, name, op, *inputs):
        self.g.add_node(name, layer=Layer(name, op, op.value))
        for i, src in enumerate(inputs):
            self.g.add_edge(src, name, index=i)
        return self

    def done(self, *outputs):
        self.g.graph["outputs"] = list(outputs) or [n for n in self.g if self.g.out_degree(n) == 0]
        return self.g


def _chains(graph):
    return [(c.first, c.last, c.depth) for c in plain_chains(graph)]


def test_plain_stack_is_one_chain():
    b = _G()
    prev = "x"
    for i in range(5):
        b.add(f"c{i}", Op.CONV, prev).add(f"r{i}", Op.ACTIVATION, f"c{i}")
        prev = f"r{i}"
    b.add("flat", Op.FLATTEN, prev).add("fc", Op.LINEAR, "flat")
    chains = plain_chains(b.done())
    assert _chains(b.g) == [("c0", "fc", 6)]
    assert chains[0].layers == ("c0", "c1", "c2", "c3", "c4", "fc")


def test_identity_shortcut_ends_chain_at_fork_and_merge():
    b = _G().add("a", Op.CONV, "x").add("b1", Op.CONV, "a").add("b2", Op.CONV, "b1")
    b.add("sum", Op.ADD, "a", "b2").add("c", Op.CONV, "sum")
    assert _chains(b.done()) == [("b1", "b2", 2), ("a", "a", 1), ("c", "c", 1)]


def test_squeeze_excitation_branch_of_unequal_depth_ends_chain():
    b = _G().add("dw", Op.CONV, "x").add("gap", Op.GLOBAL_POOL, "dw").add("fc1", Op.CONV, "gap")
    b.add("fc2", Op.CONV, "fc1").add("gate", Op.ACTIVATION, "fc2").add("scale", Op.MUL, "dw", "gate")
    b.add("project", Op.CONV, "scale")
    assert _chains(b.done()) == [("fc1", "fc2", 2), ("dw", "dw", 1), ("project", "project", 1)]


def test_equal_parallel_branches_keep_chain():
    b = _G().add("a", Op.CONV, "x").add("p", Op.CONV, "a").add("q1", Op.CONV, "a").add("q", Op.ACTIVATION, "q1")
    b.add("cat", Op.CONCAT, "p", "q").add("c", Op.CONV, "cat")
    chains = plain_chains(b.done())
    assert _chains(b.g) == [("a", "c", 3)]
    assert chains[0].layers == ("a", "p", "c")


def test_second_output_is_a_shorter_route():
    b = _G().add("c1", Op.CONV, "x").add("c2", Op.CONV, "c1").add("c3", Op.CONV, "c2").add("c4", Op.CONV, "c3")
    assert _chains(b.done("c2", "c4")) == [("c1", "c2", 2), ("c3", "c4", 2)]


def test_dead_branch_does_not_end_chain():
    b = _G().add("c1", Op.CONV, "x").add("c2", Op.CONV, "c1").add("c3", Op.CONV, "c2").add("dead", Op.CONV, "c1")
    assert _chains(b.done("c3")) == [("c1", "c3", 3)]


def test_weighted_depth_takes_longest_route():
    b = _G().add("a", Op.CONV, "x").add("b1", Op.CONV, "a").add("b2", Op.CONV, "b1")
    b.add("sum", Op.ADD, "a", "b2").add("pool", Op.MAX_POOL, "sum")
    assert weighted_depths(b.done()) == {"x": 0, "a": 1, "b1": 2, "b2": 3, "sum": 3, "pool": 3}


def _random_dag(rng: random.Random, n: int) -> Graph:
    b = _G()
    ops = [Op.CONV, Op.CONV, Op.LINEAR, Op.ACTIVATION, Op.ADD, Op.CONCAT, Op.NORM]
    for i in range(1, n):
        names = ["x"] + [f"n{j}" for j in range(1, i)]
        preds = rng.sample(names, k=min(len(names), rng.choice((1, 1, 2, 3))))
        b.add(f"n{i}", rng.choice(ops), *preds)
    return b.done()


def _routes(graph: Graph, src: str, dst: str, prefix=()):
    prefix = prefix + (src,)
    if src == dst:
        yield prefix
        return
    for nxt in graph.successors(src):
        yield from _routes(graph, nxt, dst, prefix)


def test_every_route_through_a_chain_has_its_depth_on_random_dags():
    """Brute force: each chain's depth is the weighted count of *every* route from its first to its last layer."""
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        g = _random_dag(rng, rng.randint(4, 14))
        for chain in plain_chains(g):
            assert len(chain.layers) == chain.depth and chain.layers[0] == chain.first
            assert chain.layers[-1] == chain.last
            for route in _routes(g, chain.first, chain.last):
                assert sum(g.layer(n).op in (Op.CONV, Op.LINEAR) for n in route) == chain.depth
                checked += 1
    assert checked > 300


def _residual_stack(blocks: int) -> Graph:
    """``blocks`` residual blocks of two convs each (4 nodes per block)."""
    b = _G()
    prev = "x"
    for i in range(blocks):
        b.add(f"b{i}.c1", Op.CONV, prev).add(f"b{i}.c2", Op.CONV, f"b{i}.c1")
        b.add(f"b{i}.add", Op.ADD, prev, f"b{i}.c2").add(f"b{i}.relu", Op.ACTIVATION, f"b{i}.add")
        prev = f"b{i}.relu"
    return b.done()


def _plain_stack(convs: int) -> Graph:
    b = _G()
    prev = "x"
    for i in range(convs):
        b.add(f"c{i}", Op.CONV, prev)
        prev = f"c{i}"
    return b.done()


@pytest.mark.parametrize("build,longest", [(_residual_stack, lambda n: 2), (_plain_stack, lambda n: n)],
                         ids=["residual", "plain"])
def test_chains_take_linear_work_on_large_graphs(build, longest):
    """Twice the graph, twice the calls: long residual and plain stacks (up to 10k nodes)."""
    calls = {}
    for n in (2500, 5000):
        chains, calls[n] = count_calls(plain_chains, build(n))
        assert chains[0].depth == longest(n)
    assert calls[5000] / calls[2500] < 2.2, calls


def test_rule_reports_last_layer_with_depth_against_limit():
    path = fixture_path("plain_chain_30_legacy.onnx")
    report = lint(str(path), Config(select=("AL101",), options={"AL101.max-plain-depth": 29}))
    (finding,) = report.findings
    assert (finding.code, finding.layer, finding.severity.value) == ("AL101", "convs.29", "warning")
    assert "(30/29)" in finding.message and "'convs.0'" in finding.message
    assert finding.data == {"depth": 30, "limit": 29, "recurrent": 0, "recurrent_limit": 4, "first": "convs.0",
                            "last": "convs.29", "layers": [f"convs.{i}" for i in range(30)]}
    assert finding.fix


def test_rule_metadata():
    assert get_rules() == [DeepChainWithoutSkip]
    assert DeepChainWithoutSkip.code == "AL101" and DeepChainWithoutSkip.name == "deep-chain-without-skip"
    assert {o.name: o.default for o in DeepChainWithoutSkip.options} == {"max-plain-depth": 11, "max-plain-recurrent": 4}


# VGG-16: features has 13 convs and classifier 3 linear layers, all in series -> 16.
# VGG-19: 16 convs + 3 linear -> 19.
# MobileNetV2's longest chain: features.0 (stem), features.1 (dw, pw: 32 -> 16, no residual),
# features.2 (expand, dw, project: 16 -> 24, stride 2, no residual) -> 6 layers; features.3 is
# residual, so the input of features.3 forks into an identity and three convs.
# ResNet: two (basic) or three (bottleneck) convs per residual branch; DenseNet: two per dense layer.
TORCHVISION_FLAGGED = {
    "vgg16": {"layer": "classifier.6", "depth": 16, "first": "features.0"},
    "vgg19": {"layer": "classifier.6", "depth": 19, "first": "features.0"},
}
TORCHVISION_LONGEST = {"resnet18": 2, "resnet50": 3, "densenet121": 2, "mobilenet_v2": 6}


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "resnet18", "resnet50", "densenet121", "mobilenet_v2",
                                  "mobilenet_v3_large", "efficientnet_b0"])
def test_torchvision_models(zoo, name):
    for path in zoo.exports(name):
        report = lint(str(path), Config(select=("AL1",)))
        found = [(f.layer, f.data["depth"], f.data["first"], f.data["limit"]) for f in report.findings]
        expected = TORCHVISION_FLAGGED.get(name)
        if expected:
            assert found == [(expected["layer"], expected["depth"], expected["first"], 11)], path.name
        else:
            assert found == [], path.name
        if name in TORCHVISION_LONGEST:
            assert plain_chains(load_graph(str(path)))[0].depth == TORCHVISION_LONGEST[name], path.name
    if name == "mobilenet_v2":
        chain = plain_chains(load_graph(str(path)))[0]
        assert (chain.first, chain.last) == ("features.0.0", "features.2.conv.2")

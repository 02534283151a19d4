"""Findings census: every rule over the architectures of torchvision and timm, diffed against the last run.

Like ruff's ecosystem check: a rule change shows its effect on real models in review, and a new
false positive cannot land unseen. Each model is linted on the PyTorch path with random weights
(built on the ``meta`` device, so nothing is allocated; rebuilt on the CPU only when torch.fx cannot
trace it and torch.export needs real tensors) at its default input size:

- torchvision classification (every model): the smallest crop size among its published weights
  (the size the model accepts when built without weights: 224 for ViT-H/14, 299 for Inception-v3,
  600 for EfficientNet-B7);
- torchvision segmentation (every model): the weights' resize size, 520x520;
- torchvision detection: the backbone with its feature pyramid (``model.backbone``, what the
  detection heads read), at the detector's ``min_size`` (800, 320 for the 320 variants, 300 for SSD);
- timm: one variant per architecture family, so that the run fits in 15 minutes on the 2-core
  development machine. A family is a timm model module plus the leading word of the model name
  (``resnet.py``: ``resnet``, ``resnext``, ``seresnet``, ``ecaresnet``, ``resnetrs``, ``wide``...;
  ``efficientnet.py``: ``efficientnet``, ``mobilenetv``, ``mnasnet``, ``mixnet``...): variants of
  one family share their blocks and differ mostly in depth, width or input size. The
  shortest name (then the first alphabetically) stands for its family (``resnet18``,
  ``convnext_atto``), at the input size of its default pretrained configuration. ``--all``
  lints every timm variant instead (about five times as long).

The census (per model: its input size, and per rule code the layers it flags) is written to
``docs/census.json``. Rerun, the script prints the difference against that file (findings new and
gone, per model and per code) before rewriting it, so ``git diff docs/census.json`` shows the same.

    python bench/census.py               # lint, print the difference, rewrite docs/census.json
    python bench/census.py --check       # print the difference only; exit 1 if there is one
    python bench/census.py --only resnet # models whose name contains "resnet" (no rewrite)
    python bench/census.py -j 2          # worker processes (default 2)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import multiprocessing
import os
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

CENSUS = Path(__file__).resolve().parent.parent / "docs" / "census.json"
#: Largest model (parameters) rebuilt with real weights when the meta-device model cannot be traced.
MAX_REAL_PARAMS = 400_000_000
_LIB = []


def _torchvision():
    import torch

    if not _LIB:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIB.append(lib)
    import torchvision

    return torchvision


def _timm_family(name: str) -> tuple[str, str]:
    """(model module, leading word of the name): ``resnet50d`` -> ``("resnet", "resnet")``."""
    from timm.models import get_pretrained_cfg  # noqa: F401  (imports the registry)
    from timm.models._registry import _model_to_module

    return _model_to_module.get(name, ""), re.split(r"[_\d]", name)[0]


def model_names(all_timm: bool = False) -> list[str]:
    """Census entries: ``tv/NAME``, ``tv-seg/NAME``, ``tv-det/NAME`` and ``timm/NAME``."""
    tv = _torchvision()
    import timm

    names = [f"tv/{n}" for n in tv.models.list_models(module=tv.models)]
    names += [f"tv-seg/{n}" for n in tv.models.list_models(module=tv.models.segmentation)]
    names += [f"tv-det/{n}" for n in tv.models.list_models(module=tv.models.detection)]
    if all_timm:
        return names + [f"timm/{n}" for n in timm.list_models()]
    chosen: dict[tuple[str, str], str] = {}
    for name in sorted(timm.list_models(), key=lambda n: (len(n), n)):
        chosen.setdefault(_timm_family(name), name)
    return names + sorted(f"timm/{n}" for n in chosen.values())


def _build(entry: str, device: str):
    """``(module, input_shape)`` of a census entry, built on ``device``."""
    import torch

    tv = _torchvision()
    kind, name = entry.split("/", 1)
    with torch.device(device):
        if kind == "timm":
            import timm

            model = timm.create_model(name, pretrained=False)
            return model, (1, *model.pretrained_cfg.get("input_size", (3, 224, 224)))
        builder = tv.models.get_model_builder(name)
        weights = list(tv.models.get_model_weights(name))
        if kind == "tv":
            crop = min(w.transforms.keywords.get("crop_size", 224) for w in weights) if weights else 224
            return builder(), (1, 3, crop, crop)
        if kind == "tv-seg":
            size = weights[0].transforms.keywords.get("resize_size", 520) if weights else 520
            return builder(weights_backbone=None, aux_loss=False), (1, 3, size, size)
        detector = builder(weights_backbone=None)
        size = detector.transform.min_size[0]
        return detector.backbone, (1, 3, size, size)


def lint_entry(entry: str) -> tuple[str, dict, float]:
    """Census record of one entry (input shape and layers per code, or the error), and the CPU seconds it took."""
    start = time.process_time()
    entry, record = _record(entry)
    return entry, record, time.process_time() - start


def _record(entry: str) -> tuple[str, dict]:
    import archlint
    import torch
    from archlint.errors import ArchlintError

    logging.getLogger("torch").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    record: dict = {}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            try:
                model, shape = _build(entry, "meta")
            except (NotImplementedError, RuntimeError):  # a constructor that reads values (RegNet's widths)
                model, shape = _build(entry, "cpu")
            record["input"] = list(shape)
            try:
                report = archlint.lint(model.eval(), input_shapes=shape)
            except ArchlintError:
                # torch.export (the fallback for modules torch.fx cannot trace) needs real tensors
                if sum(p.numel() for p in model.parameters()) > MAX_REAL_PARAMS:
                    raise
                del model
                model, shape = _build(entry, "cpu")
                report = archlint.lint(model.eval(), input_shapes=shape)
        except Exception as exc:  # recorded: a model that stops loading is a census change too
            record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            return entry, record
    findings: dict[str, list[str]] = {}
    for finding in report.findings:
        findings.setdefault(finding.code, []).append(finding.layer)
    record["counts"] = {code: len(layers) for code, layers in sorted(findings.items())}
    record["findings"] = {code: sorted(layers) for code, layers in sorted(findings.items())}
    return entry, record


def _pairs(record: dict | None) -> Counter:
    """(code, layer) pairs of a record, with multiplicity."""
    if not record:
        return Counter()
    return Counter((code, layer) for code, layers in record.get("findings", {}).items() for layer in layers)


def difference(old: dict, new: dict) -> list[str]:
    """Lines describing what changed from census ``old`` to ``new`` (empty when nothing did)."""
    lines = []
    totals_old, totals_new = Counter(), Counter()
    for entry in sorted(set(old) | set(new)):
        before, after = old.get(entry), new.get(entry)
        totals_old.update(code for code, _ in _pairs(before).elements())
        totals_new.update(code for code, _ in _pairs(after).elements())
        if before is None:
            lines.append(f"+ {entry}: new model")
        elif after is None:
            lines.append(f"- {entry}: no longer linted")
        if (before or {}).get("error") != (after or {}).get("error") and after is not None and before is not None:
            lines.append(f"~ {entry}: error {before.get('error')!r} -> {after.get('error')!r}")
        if before is not None and after is not None and before.get("input") != after.get("input"):
            lines.append(f"~ {entry}: input {before.get('input')} -> {after.get('input')}")
        gone = _pairs(before) - _pairs(after)
        added = _pairs(after) - _pairs(before)
        for (code, layer), count in sorted(added.items()):
            lines.append(f"+ {entry}: {code} {layer}" + (f" (x{count})" if count > 1 else ""))
        for (code, layer), count in sorted(gone.items()):
            lines.append(f"- {entry}: {code} {layer}" + (f" (x{count})" if count > 1 else ""))
    if lines:
        lines.append("per code (before -> after): " + ", ".join(
            f"{code} {totals_old[code]} -> {totals_new[code]}" for code in sorted(set(totals_old) | set(totals_new))
            if totals_old[code] != totals_new[code]))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the difference only; exit 1 if any")
    parser.add_argument("--all", action="store_true", help="every timm variant, not one per family")
    parser.add_argument("--only", default="", help="only entries whose name contains this (never rewrites)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--output", type=Path, default=CENSUS, help="census file to compare with and write")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    entries = [e for e in model_names(args.all) if args.only in e]
    start = time.perf_counter()
    census: dict[str, dict] = {}
    cpu: dict[str, float] = {}
    with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=40) as pool:
        for done, (entry, record, seconds) in enumerate(pool.imap_unordered(lint_entry, entries, chunksize=1), 1):
            census[entry] = record
            cpu[entry] = seconds
            print(f"\r{done}/{len(entries)} {entry[:60]:60}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    census = dict(sorted(census.items()))
    old = json.loads(args.output.read_text()) if args.output.exists() else {}
    if args.only:
        old = {k: v for k, v in old.items() if args.only in k}
    lines = difference(old, census)
    errors = sum("error" in r for r in census.values())
    codes = Counter(code for r in census.values() for code, n in r.get("counts", {}).items() for _ in range(n))
    print("\n".join(lines) if lines else f"no difference against {args.output.name}")
    print(f"{len(census)} models ({errors} not loaded) in {time.perf_counter() - start:.0f} s "
          f"({sum(cpu.values()):.0f} CPU s in the workers); findings per code: "
          + ", ".join(f"{c} {n}" for c, n in sorted(codes.items())))
    slowest = sorted(cpu.items(), key=lambda item: -item[1])[:5]
    print("slowest: " + ", ".join(f"{entry} {seconds:.1f} s" for entry, seconds in slowest))
    if args.check or args.only:
        return 1 if lines and args.check else 0
    args.output.write_text(json.dumps(census, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

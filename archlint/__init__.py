"""archlint: an architecture linter and static analyzer for convolutional neural networks.

>>> import archlint
>>> report = archlint.lint("fixtures/models/resnet_tiny_legacy.onnx")  # doctest: +SKIP
>>> report.summary.macs  # doctest: +SKIP
"""

__version__ = "0.1.0"


def lint(model, config=None, **overrides):
    """Lint a model and return its Report; see :func:`archlint.engine.run.lint`."""
    from .engine.run import lint as _lint

    return _lint(model, config, **overrides)


__all__ = ["lint", "__version__"]

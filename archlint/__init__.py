"""archlint: an architecture linter and static analyzer for convolutional neural networks.

>>> import archlint
>>> report = archlint.lint("fixtures/models/resnet_tiny_legacy.onnx")  # doctest: +SKIP
>>> report.summary.macs  # doctest: +SKIP
"""

__version__ = "0.1.0"


def lint(model, config=None, **overrides):
    """Lint a model (ONNX file, PyTorch module...) and return its Report; see :func:`archlint.engine.run.lint`.

    PyTorch modules need input shapes: ``archlint.lint(module, example_inputs=torch.randn(1, 3, 224, 224))``.
    """
    from .engine.run import lint as _lint

    return _lint(model, config, **overrides)


__all__ = ["lint", "__version__"]

"""archlint's built-in rules, one module per family, each loaded through the ``archlint.rules`` entry points."""

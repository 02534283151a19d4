"""Placeholder while the depthwise rules are written."""


def get_rules():
    return []

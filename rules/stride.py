"""Placeholder while the stride rules are written."""


def get_rules():
    return []

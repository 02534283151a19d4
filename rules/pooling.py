"""Placeholder while the pooling rules are written."""


def get_rules():
    return []

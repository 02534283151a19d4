"""Analyses: functions of a Graph that compute shapes, receptive fields and costs.

``ANALYSES`` names the ones the engine can run on demand for rules and reports.
"""

from .macs import costs
from .receptive_field import receptive_fields

__all__ = ["ANALYSES"]

ANALYSES = {"costs": costs, "receptive_fields": receptive_fields}

"""The engine: finds rules, reads configuration, runs analyses and rules, applies suppressions."""

"""scaling: plan, run, record, fit and see scaling experiments."""

__version__ = "0.1.0"

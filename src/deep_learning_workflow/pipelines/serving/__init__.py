"""Serving: export the serving bundle of the gated model, score a batch of new records, report drift."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

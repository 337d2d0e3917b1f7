"""Evaluation: validation metrics, decision threshold and release gate; the test split once, at the end."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

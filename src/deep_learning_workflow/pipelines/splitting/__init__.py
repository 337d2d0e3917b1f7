"""Stratified train/validation/test split and balancing of the training split only."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

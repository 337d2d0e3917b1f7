"""Stateless cleaning of the acquired table and the EDA report of the clean table."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

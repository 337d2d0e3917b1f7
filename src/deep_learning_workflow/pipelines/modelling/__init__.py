"""Modelling: a Keras model carrying its own preprocessing, baselines, a sanity check, several seeds."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

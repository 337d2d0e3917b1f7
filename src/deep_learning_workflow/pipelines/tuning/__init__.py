"""Tuning: an Optuna study over the modelling parameters, then the tuned model through modelling and evaluation."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

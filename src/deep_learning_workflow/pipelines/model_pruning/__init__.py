"""Model pruning: magnitude pruning of the trained model, fine-tuned, judged by the same release gate."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

"""Data acquisition: public file + SQL database + web API + web pages + crowd labels -> the acquired table."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

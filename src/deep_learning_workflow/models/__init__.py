"""Model building and fitting, shared by the pipelines: preprocessing fitted on train, the model families, training.

The pipelines import this package; it imports no pipeline.
"""

"""Deep Learning Workflow"""

__version__ = "0.1"

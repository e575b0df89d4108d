"""unseen: adapt pre-trained models to unseen tasks and domains with zero or few labels."""

__version__ = "0.1.0"

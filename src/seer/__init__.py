"""seer: Self-Evolving Evaluator and Reprompter for unified multimodal models."""

__version__ = "0.1.0"

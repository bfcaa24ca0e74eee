"""Evaluation: ground-truth metrics of models in the shapes world."""

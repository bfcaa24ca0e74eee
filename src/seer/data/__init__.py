"""Data sets built from the world (pretraining mix, VIE sets) and the task templates."""

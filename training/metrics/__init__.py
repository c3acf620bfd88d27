"""Measurements on a data split, shared by the training loops (validation) and `evaluate` (test)."""

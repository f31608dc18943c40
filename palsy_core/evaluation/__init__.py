"""Metrics artifacts, curves, the transfer tables and the model card."""

"""Reproducible companion to "Language Models Resist Alignment: Evidence From Data Compression"."""

__version__ = "0.1.0"

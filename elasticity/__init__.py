"""Reproducible companion to "Language Models Resist Alignment: Evidence From Data Compression"."""

from elasticity import numerics

numerics.pin()  # before anything imports torch: one CPU kernel level on every machine (see elasticity.numerics)

__version__ = "0.1.0"

"""Checking velocity products: stable ground, GPS stakes, reference fields, metrics and reports."""

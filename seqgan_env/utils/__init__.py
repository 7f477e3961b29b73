"""Utilities every layer may use: validation, atomic writes."""

"""Thin route modules: parse, validate, enqueue, return a schema."""

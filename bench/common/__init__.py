"""Helpers shared by the benchmark harnesses (process management, HTTP waiting)."""

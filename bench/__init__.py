"""Benchmark harnesses (not part of the installed package): Banking77 distillation and overhead."""

"""Benchmark tasks: one module each (data, prompt, replay teacher, scoring) for the harness."""

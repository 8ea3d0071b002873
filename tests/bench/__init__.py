"""Tests of the benchmark harnesses (bench/)."""

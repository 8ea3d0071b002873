"""Proxy overhead benchmark: direct vs distill-proxy vs LiteLLM against a fast fake upstream."""

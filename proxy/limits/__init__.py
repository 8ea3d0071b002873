"""Per-client limits: requests and tokens per minute, spend per day and month."""

from proxy.limits.limiter import RateLimiter
from proxy.limits.policy import KeyLimits, LimitPolicy, Limits, estimate_tokens

__all__ = ["KeyLimits", "LimitPolicy", "Limits", "RateLimiter", "estimate_tokens"]

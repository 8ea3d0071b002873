"""Client and admin settings: who may call the proxy, and how large a request may be."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class ClientSettings(BaseModel):
    """Client keys, the admin key, the body limit."""

    api_keys: str | None = Field(
        None,
        description="Comma-separated client keys (Authorization: Bearer). Unset: no auth, "
        "loopback only.",
    )
    admin_key: SecretStr | None = Field(None, description="Key for /admin/* and /dashboard.")
    max_body_bytes: int = Field(
        4_000_000, ge=1024, description="Largest accepted request body (413 above)."
    )

    @property
    def client_keys(self) -> list[str]:
        if not self.api_keys:
            return []
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

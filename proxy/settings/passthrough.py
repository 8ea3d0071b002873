"""Pass-through settings: the rest of the OpenAI API, relayed to the teacher as it is
(proxy/serving/passthrough)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

# OpenAI endpoint families (the first path segment after /v1/) that can be relayed as is.
PASSTHROUGH_ENDPOINTS: tuple[str, ...] = (
    "embeddings", "completions", "moderations", "images", "audio", "files", "uploads",
    "batches", "responses", "vector_stores", "fine_tuning", "assistants", "threads",
    "realtime", "containers", "conversations", "evals", "videos", "chat", "models",
)  # fmt: skip


class PassthroughSettings(BaseModel):
    """Which endpoints are relayed, how large their bodies may be, which names /v1/models adds."""

    passthrough: str = Field(
        "all",
        description="OpenAI endpoints the proxy does not distill and relays to the teacher "
        "as they are: `all`, `none`, or a comma-separated list of names ("
        + ", ".join(PASSTHROUGH_ENDPOINTS)
        + "); `all,-images,-audio` relays all but those. The others are refused (403).",
    )
    max_upload_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest body relayed to the teacher by pass-through (uploads, batches "
        "of embeddings inputs; 413 above). The log keeps a JSON body up to max_body_bytes.",
    )
    model_aliases: str | None = Field(
        None,
        description="Comma-separated model names /v1/models lists besides the student and the "
        "teacher's models (for clients that check the model name before they start).",
    )

    @field_validator("passthrough")
    @classmethod
    def _known_endpoints(cls, v: str) -> str:
        for item in v.split(","):
            name = item.strip().removeprefix("-")
            if name and name not in ("all", "none") and name not in PASSTHROUGH_ENDPOINTS:
                known = ", ".join(PASSTHROUGH_ENDPOINTS)
                raise ValueError(f"unknown pass-through endpoint {name!r}; known: {known}")
        return v

    @property
    def passthrough_endpoints(self) -> frozenset[str]:
        """The endpoint names relayed to the teacher (DISTILL_PASSTHROUGH resolved)."""
        chosen: set[str] = set()
        for item in (i.strip() for i in self.passthrough.split(",")):
            if item == "all":
                chosen.update(PASSTHROUGH_ENDPOINTS)
            elif item == "none":
                chosen.clear()
            elif item.startswith("-"):
                chosen.discard(item[1:])
            elif item:
                chosen.add(item)
        return frozenset(chosen)

    @property
    def model_alias_list(self) -> list[str]:
        return [m.strip() for m in (self.model_aliases or "").split(",") if m.strip()]

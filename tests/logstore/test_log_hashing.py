"""prompt_hash normalisation and key_hash."""

from __future__ import annotations

import hashlib

from proxy.logstore.hashing import key_hash, prompt_hash


def test_whitespace_and_part_lists_normalised() -> None:
    plain = [{"role": "user", "content": "Hello   world\n\tagain "}]
    parts = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hello world"}, {"type": "text", "text": "again"}],
        }
    ]
    assert prompt_hash(plain) == prompt_hash(parts)
    assert len(prompt_hash(plain)) == 64


def test_case_roles_order_and_extras_matter() -> None:
    base = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert prompt_hash(base) != prompt_hash([base[0], {"role": "user", "content": "hi"}])
    assert prompt_hash(base) != prompt_hash([base[1], base[0]])
    assert prompt_hash(base) != prompt_hash([{"role": "user", "content": "Be brief."}, base[1]])
    image = {"type": "image_url", "image_url": {"url": "data:a"}}
    other = {"type": "image_url", "image_url": {"url": "data:b"}}
    with_a = [{"role": "user", "content": [{"type": "text", "text": "x"}, image]}]
    with_b = [{"role": "user", "content": [{"type": "text", "text": "x"}, other]}]
    assert prompt_hash(with_a) != prompt_hash(with_b)
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "function": {}}]}
    assert prompt_hash([call]) != prompt_hash([{"role": "assistant", "content": None}])


def test_stable_value() -> None:
    # Pinned: a change would silently split held-out sets and dedup groups.
    assert (
        prompt_hash([{"role": "user", "content": "Hi"}])
        == hashlib.sha256(b'[["user","Hi"]]').hexdigest()
    )


def test_key_hash() -> None:
    assert key_hash("sk-abc") == hashlib.sha256(b"sk-abc").hexdigest()
    assert "sk-abc" not in key_hash("sk-abc")

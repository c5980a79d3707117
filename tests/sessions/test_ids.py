from __future__ import annotations

import re

from clustersession.sessions.ids import SessionIds


def test_tokens_are_128_bit_url_safe_and_unique() -> None:
    ids = SessionIds(None, "node1")
    tokens = {ids.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token)


def test_full_id_carries_the_route() -> None:
    ids = SessionIds("s3cret", "node1")
    token = ids.new_token()
    assert ids.full_id(token) == f"{token}.node1"
    assert ids.parse(f"{token}.node1") == (token, "node1")
    assert ids.parse(f"{token}.node2") == (token, "node2")  # the route is a hint
    assert ids.parse(token) == (token, None)


def test_signed_ids_refuse_forgeries() -> None:
    ids = SessionIds("s3cret", "node1")
    token = ids.new_token()
    forged = token[:22] + ("A" if token[22] != "A" else "B") + token[23:]
    assert ids.parse(forged + ".node1") is None
    assert SessionIds("other", "node1").parse(token + ".node1") is None
    unsigned = SessionIds(None, "node1").new_token()
    assert ids.parse(unsigned + ".node1") is None


def test_malformed_values_are_refused() -> None:
    ids = SessionIds(None, None)
    for value in ["", ".", "short", "x" * 22 + ".bad route", "é" * 22, "x" * 23]:
        assert ids.parse(value) is None


def test_rotation_previous_secrets_verify_and_the_secret_signs() -> None:
    old, new = "old-secret-0123456789", "new-secret-0123456789"
    before = SessionIds(old, "node1")
    old_token = before.new_token()
    # Step (a): the old secret signs, the new one is already accepted.
    staged = SessionIds(old, "node1", previous=(new,))
    # Step (b): the new secret signs, the old one is still accepted.
    rotated = SessionIds(new, "node1", previous=(old,))
    new_token = rotated.new_token()
    assert rotated.parse(old_token) == (old_token, None)
    assert staged.parse(new_token) == (new_token, None)
    assert before.parse(new_token) is None  # why step (a) comes first
    # Step (c): the old secret is gone, and so are the ids it signed.
    done = SessionIds(new, "node1")
    assert done.parse(new_token) == (new_token, None)
    assert done.parse(old_token) is None
    # A token signed by neither is refused by all.
    stranger = SessionIds("stranger-secret-0123", "node1").new_token()
    assert rotated.parse(stranger) is None and staged.parse(stranger) is None

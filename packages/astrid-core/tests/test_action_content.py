"""A file write carries its content by size and BLAKE3 hash, both or neither, never the bytes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from astrid_core import BadInputError, FileRead, FileWrite, action_from_json, action_to_json

DIGEST = "0123456789abcdef" * 4


def test_content_fields_round_trip_and_count() -> None:
    write = FileWrite(path="/ws/a.txt", content_bytes=5, content_blake3=DIGEST)
    assert write.content_size() == 5
    data = action_to_json(write)
    assert data["content_bytes"] == 5
    assert data["content_blake3"] == DIGEST
    assert action_from_json(data) == write
    assert write.summary == "Write file: /ws/a.txt (5 bytes)"  # what the human approves
    assert FileWrite(path="/ws/a.txt").summary == "Write file: /ws/a.txt"
    assert FileWrite(path="/ws/a.txt").content_size() == 0  # a write with no known content
    assert FileRead(path="/ws/a.txt").content_size() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"content_bytes": 5},
        {"content_blake3": DIGEST},
        {"content_bytes": -1, "content_blake3": DIGEST},
        {"content_bytes": 5, "content_blake3": DIGEST.upper()},
        {"content_bytes": 5, "content_blake3": DIGEST[:-1]},
    ],
)
def test_content_fields_are_validated(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FileWrite(path="/ws/a.txt", **fields)  # pyright: ignore[reportArgumentType]
    with pytest.raises(BadInputError):
        action_from_json({"kind": "file_write", "path": "/ws/a.txt", **fields})

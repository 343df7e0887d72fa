"""The wire format's events refuse data no JSON text could store or stream, however it arrives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agent_runner.protocol import EventBatch
from pydantic import ValidationError

HALF_A_SURROGATE_PAIR = "\ud800"


def a_batch(text: str) -> dict[str, Any]:
    event = {"seq": 1, "type": "text_delta", "data": {"text": text}, "time": "2026-12-05T00:00:00Z"}
    return {"events": [event]}


def test_half_a_surrogate_pair_is_refused_in_json_text() -> None:
    # Python's json module escapes it; pydantic's parser, which the platform reads posts with,
    # refuses the escape itself, so the event's own check is skipped for JSON text.
    with pytest.raises(ValidationError, match="Invalid JSON"):
        EventBatch.model_validate_json(json.dumps(a_batch(HALF_A_SURROGATE_PAIR)))


def test_half_a_surrogate_pair_is_refused_in_python_data() -> None:
    with pytest.raises(ValidationError, match="valid Unicode"):
        EventBatch.model_validate(a_batch(HALF_A_SURROGATE_PAIR))


def test_a_whole_pair_is_accepted_either_way() -> None:
    emoji = "\U0001f600"
    assert EventBatch.model_validate_json(json.dumps(a_batch(emoji))).events[0].data["text"] == (
        emoji
    )
    assert EventBatch.model_validate(a_batch(emoji)).events[0].data["text"] == emoji

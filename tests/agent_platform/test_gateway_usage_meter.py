"""The gateway reads usage out of a relayed event stream, however it is cut into chunks."""

from __future__ import annotations

import json

from agent_platform.llm_gateway import SseUsageMeter
from agent_runner.protocol import Usage


def _event(name: str, data: dict[str, object], newline: str = "\n") -> bytes:
    return f"event: {name}{newline}data: {json.dumps(data)}{newline}{newline}".encode()


STREAM = b"".join(
    [
        _event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "usage": {
                        "input_tokens": 900,
                        "output_tokens": 1,
                        "cache_creation_input_tokens": 40,
                        "cache_read_input_tokens": 2000,
                    }
                },
            },
        ),
        _event(
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "usage"}},
        ),
        _event("message_delta", {"type": "message_delta", "usage": {"output_tokens": 57}}),
        _event("message_stop", {"type": "message_stop"}),
    ]
)
EXPECTED = Usage(
    input_tokens=900, output_tokens=57, cache_creation_input_tokens=40, cache_read_input_tokens=2000
)


def test_usage_is_read_from_message_start_and_the_final_delta() -> None:
    meter = SseUsageMeter()
    meter.feed(STREAM)
    assert meter.usage == EXPECTED


def test_usage_survives_any_chunking_of_the_stream() -> None:
    for size in (1, 7, 64):
        meter = SseUsageMeter()
        for start in range(0, len(STREAM), size):
            meter.feed(STREAM[start : start + size])
        assert meter.usage == EXPECTED, size


def test_crlf_line_endings_are_understood() -> None:
    meter = SseUsageMeter()
    meter.feed(
        _event("message_delta", {"type": "message_delta", "usage": {"output_tokens": 3}}, "\r\n")
    )
    assert meter.usage.output_tokens == 3


def test_an_unreadable_event_changes_nothing() -> None:
    meter = SseUsageMeter()
    meter.feed(b'event: message_delta\ndata: {"usage": not json\n\n')
    assert meter.usage == Usage()


def test_only_whole_events_are_passed_on_and_the_end_is_seen() -> None:
    meter = SseUsageMeter()
    passed = b"".join(meter.feed(STREAM[start : start + 7]) for start in range(0, len(STREAM), 7))
    assert passed == STREAM
    assert meter.ended


def test_a_stream_cut_short_passes_on_no_half_event_and_keeps_the_usage_billed() -> None:
    last = _event("message_stop", {"type": "message_stop"})
    meter = SseUsageMeter()
    passed = meter.feed(STREAM[: -len(last) - 5])
    assert STREAM.startswith(passed)
    assert passed.endswith(b"\n\n")
    assert not meter.ended
    assert meter.usage.input_tokens == 900


def _delta(delta: dict[str, str]) -> bytes:
    return _event("content_block_delta", {"type": "content_block_delta", "delta": delta})


CUT_STREAM = b"".join(
    [
        STREAM.split(b"\n\n")[0] + b"\n\n",
        _delta({"type": "text_delta", "text": "caf\u00e9 "}),
        _delta({"type": "input_json_delta", "partial_json": '{"command": "ls'}),
        _delta({"type": "thinking_delta", "thinking": "hmm"}),
    ]
)
# "café " is 6 bytes of UTF-8, the JSON 15, the thinking 3.
CUT_BYTES = 6 + 15 + 3


def test_a_stream_cut_before_its_final_usage_counts_a_token_per_byte_streamed() -> None:
    meter = SseUsageMeter()
    meter.feed(CUT_STREAM)
    assert not meter.ended
    assert meter.usage == EXPECTED.model_copy(update={"output_tokens": CUT_BYTES})


def test_the_estimate_never_exceeds_the_calls_max_tokens() -> None:
    meter = SseUsageMeter(max_output=10)
    meter.feed(CUT_STREAM)
    assert meter.usage.output_tokens == 10


def test_the_final_usage_replaces_the_estimate() -> None:
    meter = SseUsageMeter()
    meter.feed(CUT_STREAM)
    meter.feed(_event("message_delta", {"type": "message_delta", "usage": {"output_tokens": 7}}))
    assert meter.usage.output_tokens == 7

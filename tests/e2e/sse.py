"""A small SSE reader over httpx for raw-protocol checks (the openai client hides the wire)."""

import json


def read_events(response):
    """Yields ('data', parsed-or-'[DONE]') and ('comment', text) from an httpx stream."""
    for line in response.iter_lines():
        if not line:
            continue
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("data:"):
            payload = line[5:].strip()
            yield "data", payload if payload == "[DONE]" else json.loads(payload)


def collect_stream(response):
    """All data events up to [DONE]; returns (chunks, saw_done)."""
    chunks = []
    for kind, value in read_events(response):
        if kind != "data":
            continue
        if value == "[DONE]":
            return chunks, True
        chunks.append(value)
    return chunks, False

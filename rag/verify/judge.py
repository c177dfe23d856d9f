"""An LLM as a claim judge: the prompt asking for JSON verdicts, and a tolerant parser of its reply."""

from __future__ import annotations

import json
from typing import Any

JUDGE_SYSTEM = """You check whether claims are supported by a context. A claim is supported only if the context
states it (or it follows directly from the context). Numbers, names and negations must match exactly.
Reply with JSON only, in this form:
{"verdicts": [{"claim": 1, "supported": true, "reason": "short reason"}, ...]}"""


def parse_judge_reply(text: str, n: int) -> dict[int, tuple[bool, str]]:
    """Verdicts by claim number (1-based) from a judge reply; claims it does not cover are left out."""
    data = _first_json(text)
    if isinstance(data, dict):
        data = data.get("verdicts", data.get("claims", [data] if "supported" in data else []))
    if not isinstance(data, list):
        return {}
    out: dict[int, tuple[bool, str]] = {}
    for pos, item in enumerate(data, start=1):
        if not isinstance(item, dict) or "supported" not in item:
            continue
        k = item.get("claim", pos)
        k = k if isinstance(k, int) and 1 <= k <= n else pos
        sup = item["supported"]
        if isinstance(sup, str):
            sup = sup.strip().lower() in ("true", "yes", "supported", "1")
        if isinstance(sup, bool | int) and k <= n:
            out[k] = (bool(sup), str(item.get("reason", ""))[:200])
    return out


def _first_json(text: str) -> Any:
    """The first JSON object or array in a text (models wrap JSON in prose or code fences)."""
    dec = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return dec.raw_decode(text[i:])[0]
            except json.JSONDecodeError:
                continue
    return None

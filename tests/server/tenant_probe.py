"""Shared by the tenant race tests: two tenants' documents on one topic, each chunk carrying its tenant's secret,
and the checks that a response to one tenant's reader holds nothing of the other's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

SECRETS = {"A": "ALPHA-7731-KESTREL", "B": "BRAVO-4420-OSPREY"}
SHARED = "shared.md"  # both tenants hold a document of this name
QUESTIONS = ["What is the falcon code word in the ledger?", "Which falcon ledger code word is kept?",
             "falcon ledger code word", "Who keeps the falcon ledger and what is its code word?"]


def other(tenant: str) -> str:
    return "B" if tenant == "A" else "A"


def doc_name(tenant: str, n: int) -> str:
    return f"{tenant.lower()}-{n}.md"


def doc_text(tenant: str, name: str, version: int) -> str:
    """One short chunk; every sentence names the tenant's secret, so any chunk of it is recognisable."""
    s = SECRETS[tenant]
    return (f"# Falcon ledger {name}\n\nThe falcon code word in ledger {name} is {s}. "
            f"Version {version} of this falcon ledger lists the code word {s}.\n")


def owns(tenant: str, source: str) -> bool:
    return source == SHARED or source.startswith(f"{tenant.lower()}-")


@dataclass
class Tally:
    """What a reader checked and what it found wrong."""

    requests: dict[str, int] = field(default_factory=dict)
    checks: int = 0
    chunks: int = 0
    with_own_text: int = 0  # responses that did carry the tenant's own secret (the probe reaches something)
    errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)

    def count(self, route: str) -> None:
        self.requests[route] = self.requests.get(route, 0) + 1

    def merge(self, o: Tally) -> None:
        for k, v in o.requests.items():
            self.requests[k] = self.requests.get(k, 0) + v
        self.checks += o.checks
        self.chunks += o.chunks
        self.with_own_text += o.with_own_text
        self.errors += o.errors
        self.leaks += o.leaks

    def summary(self) -> dict:
        return {"requests": sum(self.requests.values()), "by_route": self.requests, "checks": self.checks,
                "chunks_checked": self.chunks, "responses_with_own_text": self.with_own_text,
                "errors": len(self.errors), "cross_tenant": len(self.leaks)}


def check_text(t: Tally, tenant: str, where: str, text: str) -> None:
    """No secret and no document name of the other tenant anywhere in a response."""
    t.checks += 1
    foreign = SECRETS[other(tenant)]
    if foreign in text or f'"{other(tenant).lower()}-' in text:
        t.leaks.append(f"{where}: {text[:300]}")
    if SECRETS[tenant] in text:
        t.with_own_text += 1


def check_chunk(t: Tally, tenant: str, where: str, source: str, text: str | None) -> None:
    """A returned chunk (hit, context, citation): of the tenant by its name, and by its secret when it has text."""
    t.chunks += 1
    t.checks += 1
    if not owns(tenant, source):
        t.leaks.append(f"{where}: chunk of {source!r} returned to tenant {tenant}")
    if text is not None:
        t.checks += 1
        if SECRETS[other(tenant)] in text or SECRETS[tenant] not in text:
            t.leaks.append(f"{where}: chunk {source!r} does not carry tenant {tenant}'s secret: {text[:200]}")


def check_retrieve(t: Tally, tenant: str, hits: list[dict]) -> None:
    for h in hits:
        check_chunk(t, tenant, "retrieve", h["source"], h["text"])


def check_answer(t: Tally, tenant: str, body: dict, where: str = "ask") -> None:
    for h in body.get("contexts", []):
        check_chunk(t, tenant, where, h["source"], h.get("text"))
    for c in body.get("citations", []):
        check_chunk(t, tenant, where, c["source"], None)


def check_stream(t: Tally, tenant: str, raw: str) -> bool:
    """The SSE body of a streamed chat answer; True when it ended with [DONE]."""
    final: dict = {}
    for line in raw.splitlines():
        if line.startswith("data: {"):
            event = json.loads(line[6:])
            if "error" in event:
                t.errors.append(f"stream error event: {event['error']}")
            if event.get("citations") is not None:
                final = event
    check_answer(t, tenant, final, "stream")
    return raw.rstrip().endswith("data: [DONE]")

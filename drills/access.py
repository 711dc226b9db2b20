"""Broken-access-control drill: user A goes after user B's history every way the API offers."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import httpx

from drills.load import unique_jpeg
from drills.report import DrillResult
from drills.stack import DrillStack

__all__ = ["INJECTIONS", "run"]

#: SQL-injection strings sent in every filter.
INJECTIONS = (
    "' OR '1'='1",
    "x' OR 1=1 --",
    "'; DROP TABLE history; --",
    '" OR ""="',
    "1) OR (1=1",
    "%' OR user LIKE '%",
    "' UNION SELECT * FROM api_keys --",
    "\\'; SELECT pg_sleep(5); --",
)
REVOKE_PROBES = 12


def _classify(http: httpx.Client, model: str) -> dict:
    r = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())}, data={"model": model})
    r.raise_for_status()
    return r.json()


def _revocation_s(stack: DrillStack) -> tuple[float, int]:
    """Seconds from ``keys revoke`` returning until every worker refuses the key (fresh connections)."""
    name = f"revoked-{uuid.uuid4().hex[:6]}"
    key = stack.key(name)
    headers = {"Authorization": f"Bearer {key}"}
    warm = [httpx.get(stack.gateway_url + "/v1/models", headers=headers, timeout=10).status_code for _ in range(8)]
    stack.revoke(name)
    revoked_at = time.monotonic()
    deadline = revoked_at + 10
    while time.monotonic() < deadline:
        # A fresh connection per probe, so the kernel spreads them over the workers.
        codes = [httpx.get(stack.gateway_url + "/v1/models", headers=headers, timeout=10).status_code
                 for _ in range(REVOKE_PROBES)]  # fmt: skip
        if all(c == 401 for c in codes):
            return time.monotonic() - revoked_at, sum(1 for c in warm if c == 200)
        time.sleep(0.05)
    return float("inf"), sum(1 for c in warm if c == 200)


@dataclass
class _Probe:
    """A's attempts so far: how many, which answered 5xx, which showed any of B's ``secrets``."""

    secrets: set[str]
    attempts: int = 0
    leaks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def check(self, response: httpx.Response, what: str) -> None:
        self.attempts += 1
        if response.status_code >= 500:
            self.errors.append(f"{what}: {response.status_code}")
        # What A sent may be echoed back (a 404 names the id asked for): only the rest is a leak.
        text = response.text.replace(str(response.request.url.params), "").replace(response.request.url.path, "")
        sent = str(response.request.url)
        found = [i for i in self.secrets if i not in sent and i in text]
        if found:
            self.leaks.append(f"{what}: {len(found)} of B's ids")


def _seed(a: httpx.Client, b: httpx.Client, model: str) -> tuple[set[str], list[dict], str | None]:
    """History for both users; B's request ids, B's records and a cursor into B's history."""
    for _ in range(2):
        _classify(a, model)
    b_ids = {_classify(b, model)["request_id"] for _ in range(3)}
    time.sleep(1.0)
    b_page = b.get("/v1/history", params={"limit": 1}).json()
    b_records = b.get("/v1/history").json()["records"]
    return b_ids, b_records, b_page.get("next_cursor")


def _go_after(a: httpx.Client, probe: _Probe, b_record_ids: set[str], b_cursor: str | None, user_b: str) -> None:
    """A asks for B's records by id, by user filter, by export, with B's cursor, and pages its own."""
    for rid in b_record_ids:
        probe.check(a.get(f"/v1/history/{rid}"), "record by id")
    probe.check(a.get("/v1/history", params={"user": user_b}), "filter user=B")
    probe.check(a.get("/v1/history/export", params={"user": user_b}), "export user=B")
    probe.check(a.get("/v1/history/export"), "export")
    if b_cursor:
        probe.check(a.get("/v1/history", params={"cursor": b_cursor}), "B's cursor")
    cursor = None
    for _ in range(5):  # paginate all of A's history one record a page
        page = a.get("/v1/history", params={"limit": 1, **({"cursor": cursor} if cursor else {})})
        probe.check(page, "pagination")
        cursor = page.json().get("next_cursor") if page.status_code == 200 else None
        if not cursor:
            break


def _inject(a: httpx.Client, probe: _Probe) -> None:
    """Every injection string in every filter of both history endpoints, and as a record id."""
    for text in INJECTIONS:
        for param in ("model", "user", "since", "until", "cursor"):
            probe.check(a.get("/v1/history", params={param: text}), f"injection in {param}")
            probe.check(a.get("/v1/history/export", params={param: text}), f"injection in export {param}")
        probe.check(a.get(f"/v1/history/{text}"), "injection in record id")


def run(stack: DrillStack) -> DrillResult:
    """A reads, exports, paginates and filters B's history; revocation; SQL injection in every filter."""
    user_a, user_b = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    key_a, key_b = stack.key(user_a), stack.key(user_b)
    with stack.client(key_a) as a, stack.client(key_b) as b:
        b_ids, b_records, b_cursor = _seed(a, b, stack.model)
        b_record_ids = {r["id"] for r in b_records}
        probe = _Probe(b_record_ids | b_ids | {user_b})
        _go_after(a, probe, b_record_ids, b_cursor, user_b)
        _inject(a, probe)
        still = b.get("/v1/history").json()["records"]
    revoke_s, warm_ok = _revocation_s(stack)
    figure = (
        f"{probe.attempts} attempts by A on B's history (id, cursor, filters, export, pagination, "
        f"{len(INJECTIONS)} injection strings x 5 filters x 2 endpoints): {len(probe.leaks)} leaked, "
        f"{len(probe.errors)} 5xx; B's records intact: {len(still)}/{len(b_records)}; "
        f"revoked key refused by every worker {revoke_s:.2f} s after revoke ({REVOKE_PROBES} fresh connections)"
    )
    return DrillResult.judge(
        "broken access control",
        "user A reads, paginates, filters and exports user B's history; SQL injection in every filter; key revoked",
        figure,
        {
            "0 records leaked": not probe.leaks,
            "no error from injection or probing": not probe.errors,
            "no table harmed": len(still) == len(b_records) > 0,
            "revoked key refused within 1 s on every worker": revoke_s <= 1.0 and warm_ok > 0,
        },
    )

"""What the history table holds for one user, read back through the gateway's own CSV export."""

from __future__ import annotations

import csv
import io

import httpx

__all__ = ["history_rows"]


def history_rows(client: httpx.Client, user: str) -> list[dict[str, str]]:
    """Every history row of ``user`` (``client`` carries an admin key), newest first.

    Raises:
        RuntimeError: the export did not answer 200 with CSV.
    """
    response = client.get("/v1/history/export", params={"user": user})
    if response.status_code != 200 or not response.headers.get("content-type", "").startswith("text/csv"):
        raise RuntimeError(f"history export answered {response.status_code}: {response.text[:300]}")
    return list(csv.DictReader(io.StringIO(response.text)))

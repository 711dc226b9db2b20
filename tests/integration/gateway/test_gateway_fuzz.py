"""A property-based fuzzer driven by the gateway's own OpenAPI document (schemathesis).

Against the real gateway (real tritonserver behind it) with a valid key: every operation in
``/docs.json`` gets generated requests, positive (fitting the document) and negative (not
fitting it), and every answer must be no 5xx, a status the document declares for that
operation, the declared content type, and a body matching the declared schema. Bounded for CI:
``EXAMPLES`` per operation and mode, derandomized (the same cases every run), no example
database; about 300 requests, well under a minute.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.gateway.conftest import GatewayProcess

pytestmark = pytest.mark.integration
EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_fuzzer_finds_no_5xx_no_undocumented_status_no_schema_violation(gateway: GatewayProcess) -> None:
    """Finding: the document was not OpenAPI 3.0 and the service answered statuses it did not declare."""
    document = httpx.get(gateway.url + "/docs.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {gateway.key('fuzzer')}"}
    failures: list[str] = []
    counts: dict[str, int] = {}
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # the six /v1 operations and BentoML's infrastructure endpoints

    def fuzz(operation: Any, mode: GenerationMode, examples: int) -> None:
        label = f"{operation.label} [{mode}]"

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            counts[label] = counts.get(label, 0) + 1
            try:
                response = case.call_and_validate(base_url=gateway.url, headers=headers, checks=CHECKS, timeout=60)
            except (Exception, BaseExceptionGroup) as exc:  # a failed check: collect it, keep fuzzing the rest
                failures.append(f"{label}: {str(exc)[:600]}")
                return
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            run()
        except Unsatisfiable:  # nothing to break: an operation without parameters has no negative case
            assert mode is GenerationMode.NEGATIVE, label

    for operation in operations:
        for mode, examples in EXAMPLES.items():
            fuzz(operation, mode, examples)

    summary = (
        f"schemathesis: {len(operations)} operations, {sum(counts.values())} examples, "
        f"{len(failures)} failures; statuses {dict(sorted(statuses.items()))}"
    )
    print(summary)
    assert not failures, summary + "\n" + "\n".join(failures[:10]) + "\n" + gateway.log_tail(3000)
    assert 200 in statuses and any(400 <= s < 500 for s in statuses)  # it reached both kinds of answer

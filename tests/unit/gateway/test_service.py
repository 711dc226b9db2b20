"""The service's lifecycle: every part exists after ``__init__``, so ``close`` works after any ``open``."""

from __future__ import annotations

import pytest

from gateway import service


@pytest.fixture
def gateway() -> object:
    return service.Gateway.inner()  # the plain class behind @bentoml.service


def test_every_part_is_declared_before_open(gateway) -> None:  # noqa: ANN001
    for name in ("admission", "classifier", "tracker", "history", "triton", "redis", "decode_pool", "engine"):
        assert hasattr(gateway, name), name
    assert gateway.settings is service.SETTINGS


@pytest.mark.anyio
async def test_close_after_a_failed_open_raises_no_attribute_error(gateway, monkeypatch) -> None:  # noqa: ANN001
    def broken(_engine: object) -> None:
        raise RuntimeError("the database cannot be migrated")

    monkeypatch.setattr(service, "migrate", broken)
    with pytest.raises(RuntimeError, match="cannot be migrated"):
        await gateway.open()
    await gateway.close()  # nothing was started: nothing to stop, nothing missing

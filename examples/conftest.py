"""Fixtures of the example project: a fresh fake gateway and order table for every test."""

from __future__ import annotations

import pytest

from shop import jobs
from shop.payments import GATEWAY, FakeGateway


@pytest.fixture(name="gateway", autouse=True)
def _gateway() -> FakeGateway:
    GATEWAY.script()
    GATEWAY.charges.clear()
    jobs.ORDERS.clear()
    return GATEWAY

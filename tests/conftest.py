"""Shared pytest configuration: fixtures live in tests/fixtures/ (one module per service)."""

from tests.fixtures import import_order

import_order.install()  # torchvision before TensorFlow, loaded only in sessions that use TensorFlow

pytest_plugins = [
    "tests.fixtures.repository",
    "tests.fixtures.triton",
    "tests.fixtures.services",
]

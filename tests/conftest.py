"""Shared pytest configuration: fixtures live in tests/fixtures/ (one module per service)."""

pytest_plugins = [
    "tests.fixtures.repository",
    "tests.fixtures.triton",
    "tests.fixtures.services",
]

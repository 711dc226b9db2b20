"""Shared pytest configuration: fixtures live in tests/fixtures/ (one module per service)."""

import torchvision  # noqa: F401  (load torch + triton before TensorFlow: both ship LLVM, the other order aborts)

pytest_plugins = [
    "tests.fixtures.repository",
    "tests.fixtures.triton",
    "tests.fixtures.services",
]

"""Reliability drills (``make drills``): start a local stack, inject a fault or an abuse, measure, clean up.

Each drill is a function ``run(ctx) -> DrillResult`` in a module named for what it does
(``drills.hostile``, ``drills.access``, ``drills.faults``, ``drills.publish``, ``drills.abuse``,
``drills.soak``); ``drills.cli`` runs them and writes ``reports/drills.md`` (and, with
``--update-docs``, the table in ``docs/reliability.md``). The same functions are the tests
under ``tests/integration/drills/``.
"""

from drills.report import DrillResult

__all__ = ["DrillResult"]

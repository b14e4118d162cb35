"""The process-local memory of agents blocked for walking ids."""

from __future__ import annotations

import time

from helpdesk.web.context import OverBudget


def test_a_block_names_the_seconds_left_and_ends_by_itself() -> None:
    budget = OverBudget()
    assert budget.retry_after(7) is None
    budget.block(7, 120)
    assert budget.retry_after(7) in (119, 120)
    assert budget.retry_after(8) is None  # other agents are not affected
    budget.block(9, 0.001)
    time.sleep(0.01)
    assert budget.retry_after(9) is None

"""Cost tracking, the pricing store and token/cost estimates.

Other subpackages import this package's names from here, never from its modules.
"""

from __future__ import annotations

from .._public import publish
from .estimates import (
    count_tokens as count_tokens,
    estimate_batch_cost as estimate_batch_cost,
    estimate_cost as estimate_cost,
)
from .pricing import (
    current_pricing as current_pricing,
    pricing_problem as pricing_problem,
    save_user_pricing as save_user_pricing,
    user_pricing_path as user_pricing_path,
)
from .tracker import (
    CostReport as CostReport,
    CostTracker as CostTracker,
    Reservation as Reservation,
)

publish(globals())

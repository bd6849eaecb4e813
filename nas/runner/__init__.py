"""Running searches: Ray workers evaluate, the driver asks, tells and stores.

>>> from nas.runner import SearchConfig, search
>>> result = search(SearchConfig(supernet="runs/hv.ckpt", strategy="nsga2", budget=100))  # doctest: +SKIP
>>> result.front[0]["arch"]                                                                   # doctest: +SKIP
"""

from nas.runner.driver import SearchConfig, SearchProgress, SearchResult, pareto_front, search

__all__ = ["SearchConfig", "SearchProgress", "SearchResult", "pareto_front", "search"]

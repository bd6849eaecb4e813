"""The SQL store: experiments, spaces, architectures, evaluations, latency profiles, exports.

SQLite (WAL) at ``./nas.db`` by default; ``--db URL`` or ``$NAS_DB_URL`` for PostgreSQL.
It knows nothing of torch or of search strategies: it stores what it is given.
"""

from nas.store._store import DEFAULT_URL, Store, now, resolve_url
from nas.store.records import EvaluationRecord, ExperimentRecord, NewEvaluation

__all__ = ["DEFAULT_URL", "EvaluationRecord", "ExperimentRecord", "NewEvaluation", "Store", "now", "resolve_url"]

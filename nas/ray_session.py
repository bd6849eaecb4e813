"""Starting or joining Ray, the same way for searches and for distributed training: every
listener on 127.0.0.1 for a local Ray, temporary files under the run's folder, no usage stats,
and Ray's console notices that are not this product's kept off the console."""

from __future__ import annotations

import logging
import os
from typing import Any

from nas.errors import NasError, first_line

_LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # seen to keep every listener on 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}


class _TokenNotice(logging.Filter):
    """A local Ray turns token authentication on (good) and says so on the console at every start
    (not this product's message to print): the notice is dropped, the setting kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Token authentication is enabled for this Ray cluster" not in record.getMessage()


_TOKEN_NOTICE = _TokenNotice()


def start_ray(workers: int, address: str | None, temp_dir: str | None = None) -> bool:
    """Connect to ``address`` or start a local Ray; True when this call started it."""
    import ray

    for key, value in _LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_TOKEN_NOTICE)
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            kwargs: dict[str, Any] = {}
            if temp_dir:
                kwargs["_temp_dir"] = temp_dir
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     _node_ip_address="127.0.0.1", **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise NasError(f"cannot start or join {where}: {first_line(exc)}") from None
    return True


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()

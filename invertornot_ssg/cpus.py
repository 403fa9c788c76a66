"""How many cores this process may use: the thread pools of decoding, embedding and the map size
themselves by it."""
from __future__ import annotations

import os


def usable_cpus() -> int:
    """The cores this process may run on: a container's or taskset's share, not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

"""Give a training process a lower CPU priority, so that the app's sessions come first on a shared machine.

Measured (docs/reliability.md#soak): with a launcher run training at the app's priority, the app's steps slowed
past their budgets. On Linux with scheduler autogroups (the default on desktop and most server kernels), a
process started in its own session, as the launcher starts training, is scheduled as a group against the
server's group, and a plain `nice` only orders threads inside the group: the group's own nice value
(`/proc/self/autogroup`) is what counts, so both are set. Raising one's own nice needs no privilege; a machine
without autogroups simply uses the process nice.
"""
from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(nice: int) -> str:
    """Set this process's nice value (and its autogroup's, where the kernel has them) to `nice` (0-19); returns
    what was done, for the run's log. Call it before TensorFlow starts its threads: threads inherit it."""
    if not 0 <= nice <= 19:
        raise ValueError(f"--nice takes 0-19 (higher: lower priority), got {nice}")
    done = []
    current = os.nice(0)
    if nice > current:
        os.nice(nice - current)
        done.append(f"process nice {nice}")
    if AUTOGROUP.exists():
        try:
            AUTOGROUP.write_text(f"{nice}\n")
            done.append(f"autogroup nice {nice}")
        except OSError as exc:
            done.append(f"autogroup unchanged ({exc.strerror or exc})")
    return ", ".join(done) or f"priority unchanged (nice already {current})"

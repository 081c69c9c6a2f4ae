"""What machine a benchmark ran on, printed beside its numbers."""

from __future__ import annotations

import os
import platform


def machine_description() -> str:
    """CPU model and core count, as Linux names them (platform.processor() is often empty)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores, {platform.system()}"

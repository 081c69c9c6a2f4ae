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


def cpu_flags() -> str:
    """The CPU's vector and matrix flags that decide what is fast (AVX2, AVX-512, bf16, AMX),
    as Linux lists them; printed beside every speed figure."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next(line for line in cpuinfo if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        return "cpu flags: unknown (no /proc/cpuinfo)"
    return "cpu flags: " + " ".join(flag for flag in flags if flag.startswith(("avx", "amx", "fma")))

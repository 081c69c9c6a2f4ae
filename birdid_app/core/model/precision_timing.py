"""The timing of precision "auto"'s steady trial (core/model/precision.py says why it is done this way):
the modes are timed interleaved, one single-picture forward each per round in a turning order
(`round_order`, `time_interleaved`), until the pick by their medians (`pick`) is clear
(`pick_is_clear`) or the rounds or the time run out; and on Linux, how much of the trial's cores
other programs used meanwhile (`others_cpu_share`, from /proc/stat).

No torch here: the runs timed are given as plain calls.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# Simplest first: when two modes are about as fast, the one earlier here is picked. fp32 needs
# nothing, bf16 and fp16 only a cast, int8 a converted copy of the model (core/model/int8.py).
SIMPLICITY = ("fp32", "bf16", "fp16", "int8")
TIE_FRACTION = 0.05  # medians within 5% of the fastest count as equally fast
MIN_ROUNDS = 3  # a median of fewer says little
MAX_ROUNDS = 12
TIMING_BUDGET_S = 20.0  # the timing stops at the first round past this (warm-up included) once MIN_ROUNDS are done


@dataclass(frozen=True)
class Timings:
    times: dict[str, list[float]]  # per mode, one single-picture forward per counted round, in seconds
    rounds: int
    seconds: float  # the whole timing, warm-up included

    def summary(self) -> dict[str, tuple[float, float, float]]:
        """Per mode (median, lower quartile, upper quartile) over the rounds."""
        return {mode: summarise(times) for mode, times in self.times.items()}


def summarise(times: list[float]) -> tuple[float, float, float]:
    """(median, lower quartile, upper quartile); the quartiles interpolate between the times, so
    over 3 rounds they lie halfway between the median and the fastest, and the slowest."""
    if len(times) == 1:
        return times[0], times[0], times[0]
    low, median, high = statistics.quantiles(times, n=4, method="inclusive")
    return median, low, high


def round_order(modes: list[str], round_index: int) -> list[str]:
    """The modes in the order round `round_index` (from 0) runs them: rotated by one each round,
    and reversed in every other cycle, so over 2 x len(modes) rounds each mode runs in every
    place and after every other alike (for 3 modes: ABC BCA CAB CBA ACB BAC)."""
    shift = round_index % len(modes)
    rotated = modes[shift:] + modes[:shift]
    return rotated[::-1] if (round_index // len(modes)) % 2 else rotated


def pick(medians: dict[str, float]) -> str:
    """The simplest mode (SIMPLICITY) whose median is within TIE_FRACTION of the fastest's."""
    fastest = min(medians.values())
    return next(mode for mode in sorted(medians, key=SIMPLICITY.index) if medians[mode] <= fastest * (1 + TIE_FRACTION))


def pick_is_clear(summary: dict[str, tuple[float, float, float]]) -> bool:
    """Whether `pick` would choose the same mode whichever value inside its interquartile range
    each mode's median took: the chosen one within the tie of the fastest even at its slowest and
    the others at their fastest, and every simpler mode outside the tie even at its fastest and
    the others at their slowest."""
    chosen = pick({mode: median for mode, (median, _, _) in summary.items()})
    others = [mode for mode in summary if mode != chosen]
    if others and summary[chosen][2] > (1 + TIE_FRACTION) * min(summary[mode][1] for mode in others):
        return False
    for simpler in SIMPLICITY[: SIMPLICITY.index(chosen)]:
        if simpler in summary:
            rest = [summary[mode][2] for mode in summary if mode != simpler]
            if summary[simpler][1] <= (1 + TIE_FRACTION) * min(rest):
                return False
    return True


class Pause(Protocol):
    """How a trial run beside other work (the window's engine) keeps out of its way: before each
    round it waits until that work is idle, and a round during which it worked is timed again."""

    def wait_until_idle(self) -> None: ...

    def activity(self) -> int:
        """A count that changes whenever the other work starts or ends something."""
        ...


def time_interleaved(
    runs: dict[str, Callable[[], object]],
    *,
    clock: Callable[[], float] = time.perf_counter,
    min_rounds: int = MIN_ROUNDS,
    max_rounds: int = MAX_ROUNDS,
    budget: float = TIMING_BUDGET_S,
    on_round: Callable[[Timings], None] | None = None,
    pause: Pause | None = None,
) -> Timings:
    """Time each run (one forward each) round by round in `round_order`, after a warm-up round
    that is not counted, until the pick is clear (from `min_rounds` on), `max_rounds` are done,
    or `budget` seconds of timing have gone by `clock`. `on_round` is given the timings after
    every round. With `pause`, a round waits for the other work to be idle, and one it overlapped
    is dropped (the time waited does not count against the budget)."""
    modes = list(runs)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    started = clock()
    waited = 0.0
    for mode in round_order(modes, 0):
        runs[mode]()  # the first single-picture calls allocate and pick kernels
    rounds = 0
    while True:
        if pause is not None:
            before_wait = clock()
            pause.wait_until_idle()
            waited += clock() - before_wait
            activity = pause.activity()
        this_round: dict[str, float] = {}
        for mode in round_order(modes, rounds):
            before = clock()
            runs[mode]()
            this_round[mode] = clock() - before
        if pause is not None and pause.activity() != activity:
            continue  # the other work ran meanwhile: this round's times say nothing about the modes
        for mode, seconds in this_round.items():
            times[mode].append(seconds)
        rounds += 1
        timings = Timings(times, rounds, clock() - started - waited)
        if on_round is not None:
            on_round(timings)
        if rounds >= min_rounds and (
            rounds >= max_rounds or timings.seconds >= budget or pick_is_clear(timings.summary())
        ):
            return timings


def others_cpu_share() -> Callable[[], float | None]:
    """Starts watching this process's cores: the function returned says what share of their time
    since then went to other programs (0 to 1), or None where that cannot be read (not Linux).
    A hypervisor's stolen time counts as other programs'."""
    start = _cpu_ticks()

    def share() -> float | None:
        end = _cpu_ticks()
        if start is None or end is None:
            return None
        busy, total, own = (after - before for after, before in zip(end, start, strict=True))
        return min(max((busy - own) / total, 0.0), 1.0) if total > 0 else None

    return share


def _cpu_ticks() -> tuple[int, int, int] | None:
    """(busy, total) clock ticks of this process's cores since boot, and this process's own."""
    try:
        cores = os.sched_getaffinity(0)
        busy = total = 0
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                    # user nice system idle iowait irq softirq steal (guest time is inside user)
                    ticks = [int(field) for field in fields[:8]]
                    total += sum(ticks)
                    busy += sum(ticks) - ticks[3] - ticks[4]
        with open("/proc/self/stat", encoding="ascii") as own_stat:
            own = own_stat.read().rsplit(")", 1)[1].split()
        return busy, total, int(own[11]) + int(own[12])  # utime, stime: fields 14 and 15
    except (AttributeError, OSError, ValueError, IndexError):
        return None

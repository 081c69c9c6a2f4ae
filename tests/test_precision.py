"""precision "auto": the fastest mode that agrees with fp32 (or a simpler one as fast), measured
on this computer in interleaved rounds, kept, and measured again on request or when busy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from birdid_app.cli import main
from birdid_app.core import paths
from birdid_app.core.model import precision
from birdid_app.core.model.checkpoint import read_checkpoint, write_checkpoint
from birdid_app.core.model.inference import Classifier, cpu_has_native_bf16
from birdid_app.core.model.model_store import ModelStore
from birdid_app.core.model.precision import MIN_COSINE, candidate_precisions, choose_precision, pick
from conftest import RGB_MEAN, RGB_STD, SPECIES, make_small_model

CPU = torch.device("cpu")
REAL_OTHERS_CPU_SHARE = precision.others_cpu_share  # conftest's quiet_computer replaces it in every test


def test_bf16_is_tried_on_a_cpu_only_where_it_is_native_and_int8_on_every_cpu():
    assert candidate_precisions(CPU, native_bf16=True) == ["fp32", "bf16", "int8"]
    assert candidate_precisions(CPU, native_bf16=False) == ["fp32", "int8"]


def test_auto_runs_the_fastest_mode_that_agrees_and_keeps_the_trial(small_model_file, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(small_model_file.read_bytes())
    told = []
    choice = choose_precision(read_checkpoint(path), CPU, native_bf16=True, on_measuring=lambda: told.append(1))
    assert told == [1] and choice.measured_now
    fp32, bf16, _int8 = choice.trials
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert fp32.agrees and abs(fp32.cosine - 1) < 1e-6 and fp32.seconds > 0
    assert bf16.cosine >= MIN_COSINE and bf16.same_top5  # a confident model agrees in bf16
    assert choice.precision == pick({t.precision: t.seconds for t in choice.trials if t.agrees})
    assert choice.rounds >= 3 and choice.others_share == 0.0 and not choice.busy
    assert choice.describe().startswith(f"{choice.precision}, picked automatically")

    again = choose_precision(read_checkpoint(path), CPU, native_bf16=True, on_measuring=lambda: told.append(2))
    assert told == [1] and not again.measured_now and again.trials == choice.trials
    kept = json.loads((paths.data_dir() / "precision-trials.json").read_text())
    assert len(kept) == 1 and str(path.resolve()) in next(iter(kept))

    # A changed model file is measured again.
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert choose_precision(read_checkpoint(path), CPU, native_bf16=True).measured_now


def test_a_mode_that_disagrees_with_fp32_is_never_picked(tmp_path):
    # Every species' classifier row the same up to 1 part in 10^4: fp32 still ranks them, bf16
    # (8 bits of mantissa) cannot tell them apart, so its top-5 differs however fast it is.
    model = make_small_model(seed=3)
    with torch.no_grad():
        row = model.classifier.weight[0].clone()
        model.classifier.weight.copy_(row + 1e-4 * row.abs().mean() * torch.randn(model.classifier.weight.shape))
        model.classifier.bias.zero_()
    path = tmp_path / "flat.pt"
    write_checkpoint(path, model, SPECIES, RGB_MEAN, RGB_STD)
    choice = choose_precision(read_checkpoint(path), CPU, native_bf16=True)
    fp32, bf16, _int8 = choice.trials
    assert not bf16.same_top5 and not bf16.agrees
    assert choice.precision != "bf16"
    if choice.precision == "fp32":  # int8 is tried too, and on this flat classifier disagrees as well
        assert choice.describe() == "fp32, picked automatically: no other mode agreed with it (bf16, int8 did not agree with fp32)"
        assert choice.rounds == 0 and all(t.seconds is None for t in choice.trials)  # nothing to time it against


def test_a_classifier_on_auto_runs_the_chosen_mode_and_says_why(small_model_file, monkeypatch):
    from birdid_app.core.model import inference

    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    classifier = Classifier.from_file(small_model_file, device="cpu", precision="auto")
    kept = choose_precision(read_checkpoint(small_model_file), CPU, native_bf16=True)
    assert not kept.measured_now and classifier.precision == kept.precision
    expected_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32}[classifier.precision]
    assert classifier.model.classifier.weight.dtype == expected_dtype
    assert classifier.precision_reason == kept.describe()

    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    classifier = Classifier.from_file(small_model_file, device="cpu", precision="auto")
    # Without native bf16 the trial weighs fp32 against int8; this random model's int8 disagrees.
    assert classifier.precision == "fp32" and classifier.model.classifier.weight.dtype == torch.float32
    assert classifier.precision_reason == "fp32, picked automatically: no other mode agreed with it (int8 did not agree with fp32)"
    assert Classifier.from_file(small_model_file, device="cpu", precision="bf16").precision_reason == "bf16, as asked"


# --- the steady trial, on a fake clock: no model at all ------------------------------------------


class FakeModes:
    """Forwards that take scripted times on a fake clock, and the order they were called in.
    Each mode's script starts with its warm-up call; its last time repeats once it runs out."""

    def __init__(self, script: dict[str, list[float]]) -> None:
        self.now = 0.0
        self.calls: list[str] = []
        self.script = {mode: list(times) for mode, times in script.items()}

    def clock(self) -> float:
        return self.now

    def runs(self) -> dict:
        return {mode: (lambda mode=mode: self._run(mode)) for mode in self.script}

    def _run(self, mode: str) -> None:
        times = self.script[mode]
        self.now += times.pop(0) if len(times) > 1 else times[0]
        self.calls.append(mode)

    def timed(self, **limits) -> precision.Timings:
        return precision.time_interleaved(self.runs(), clock=self.clock, **limits)


def test_the_modes_take_turns_round_by_round_and_the_order_turns():
    modes = FakeModes({"fp32": [0.4], "bf16": [0.2], "int8": [0.3]})
    timings = modes.timed(min_rounds=6, max_rounds=6)
    warm_up, counted = modes.calls[:3], modes.calls[3:]
    assert warm_up == ["fp32", "bf16", "int8"] and timings.rounds == 6
    rounds = [counted[i : i + 3] for i in range(0, 18, 3)]
    assert ["".join(m[0] for m in r) for r in rounds] == ["fbi", "bif", "ifb", "ibf", "fib", "bfi"]
    # Over the six rounds every mode runs in every place twice, and right after every other twice.
    for place in range(3):
        assert sorted(r[place] for r in rounds) == ["bf16", "bf16", "fp32", "fp32", "int8", "int8"]
    pairs = [(r[i], r[i + 1]) for r in rounds for i in range(2)]
    assert all(pairs.count(pair) == 2 for pair in set(pairs)) and len(set(pairs)) == 6
    assert timings.times == {mode: pytest.approx([t] * 6) for mode, t in (("fp32", 0.4), ("bf16", 0.2), ("int8", 0.3))}
    assert timings.seconds == pytest.approx(0.9 * 7)  # the warm-up round counts against the budget


def test_beside_other_work_a_round_waits_for_it_and_one_it_overlapped_is_timed_again():
    """The window's engine answering a photo mid-round: that round (whose times the answer
    inflated) is dropped and run again, and the time spent waiting is not counted."""
    modes = FakeModes({"fp32": [0.4], "bf16": [0.2]})

    class EngineBeside:
        def __init__(self) -> None:
            self.count = 0
            self.waits = 0

        def wait_until_idle(self) -> None:
            self.waits += 1
            modes.now += 5.0  # the person's answer ran meanwhile: waited for, not timed

        def activity(self) -> int:
            # An answer started during the second round (the 4th and 5th reads bracket it).
            self.count += 1
            return 1 if self.count >= 4 else 0

    engine = EngineBeside()
    timings = modes.timed(min_rounds=3, max_rounds=3, pause=engine)
    assert timings.rounds == 3 and engine.waits == 4  # four rounds run, one of them dropped
    assert len(modes.calls) == 2 + 4 * 2
    assert timings.times == {"fp32": pytest.approx([0.4] * 3), "bf16": pytest.approx([0.2] * 3)}
    assert timings.seconds == pytest.approx(0.6 * 5)  # warm-up and four rounds, not the 20 s waited


def test_a_clear_order_stops_after_the_minimum_rounds():
    modes = FakeModes({"fp32": [0.40, 0.41, 0.40, 0.39], "bf16": [0.20, 0.21, 0.19, 0.20], "int8": [0.30, 0.29, 0.31, 0.30]})
    timings = modes.timed()
    assert timings.rounds == precision.MIN_ROUNDS == 3 and len(modes.calls) == 3 * 4
    summary = timings.summary()
    assert summary["bf16"] == pytest.approx((0.20, 0.195, 0.205))  # median, quartiles
    assert precision.pick({mode: median for mode, (median, _, _) in summary.items()}) == "bf16"


def test_a_noisy_order_runs_to_the_maximum_rounds_or_the_budget():
    # bf16 and int8 take turns at 0.1, 0.2 and 0.3 s: their interquartile ranges always overlap.
    swapping = {"fp32": [0.5], "bf16": [0.2] + [0.1, 0.3, 0.2] * 10, "int8": [0.2] + [0.3, 0.1, 0.2] * 10}
    timings = FakeModes(swapping).timed()
    assert timings.rounds == precision.MAX_ROUNDS == 12
    slow = {mode: [10 * t for t in times] for mode, times in swapping.items()}  # 9 s a round
    timings = FakeModes(slow).timed()
    assert timings.rounds == 3 and timings.seconds == pytest.approx(9 * 4)  # past the 20 s budget at round 2
    assert FakeModes(slow).timed(budget=60).rounds == 6  # the first round that ends past the budget: 63 s


def test_the_modes_are_compared_by_their_medians_not_their_best_or_mean_times():
    # Over 5 rounds: fp32 has the best single time, bf16 the best mean, int8 the best median.
    script = {
        "fp32": [1.0, 0.1, 1.0, 1.0, 1.0, 1.0],
        "bf16": [1.0, 0.3, 0.3, 0.9, 0.9, 0.9],
        "int8": [1.0, 0.8, 0.8, 0.8, 1.5, 1.5],
    }
    timings = FakeModes(script).timed(min_rounds=5, max_rounds=5)
    times = timings.times
    assert min(times, key=lambda m: min(times[m])) == "fp32"
    assert min(times, key=lambda m: sum(times[m])) == "bf16"
    medians = {mode: median for mode, (median, _, _) in timings.summary().items()}
    assert medians == pytest.approx({"fp32": 1.0, "bf16": 0.9, "int8": 0.8})
    assert precision.pick(medians) == "int8"


def test_a_simpler_mode_within_the_tie_fraction_is_preferred():
    assert precision.TIE_FRACTION == 0.05 and precision.SIMPLICITY == ("fp32", "bf16", "fp16", "int8")
    assert precision.pick({"fp32": 1.00, "bf16": 0.96}) == "fp32"
    assert precision.pick({"fp32": 1.00, "bf16": 0.94}) == "bf16"
    assert precision.pick({"fp32": 0.38, "bf16": 0.200, "int8": 0.195}) == "bf16"
    assert precision.pick({"fp32": 0.38, "bf16": 0.210, "int8": 0.195}) == "int8"
    assert precision.pick({"fp32": 1.0, "fp16": 0.50, "bf16": 0.51}) == "bf16"
    assert precision.pick({"fp32": 1.0, "fp16": 0.50, "int8": 0.51}) == "fp16"
    # Through the timing: bf16 2.5% slower than int8, steadily, is picked after the minimum rounds.
    modes = FakeModes({"fp32": [0.38], "bf16": [0.200], "int8": [0.195]})
    timings = modes.timed()
    assert timings.rounds == 3
    assert precision.pick({m: med for m, (med, _, _) in timings.summary().items()}) == "bf16"


def test_a_pick_is_clear_only_when_no_median_inside_its_quartiles_would_change_it():
    clear = {"fp32": (0.40, 0.39, 0.41), "bf16": (0.20, 0.19, 0.21), "int8": (0.30, 0.29, 0.31)}
    assert precision.pick_is_clear(clear)
    # int8 a little faster than bf16 over all their quartiles, but within the tie: bf16, clearly.
    assert precision.pick_is_clear(clear | {"bf16": (0.200, 0.198, 0.202), "int8": (0.198, 0.196, 0.200)})
    # bf16 picked by the tie, but at its slowest it is more than 5% behind int8 at its fastest.
    assert not precision.pick_is_clear(clear | {"int8": (0.195, 0.18, 0.21)})
    # int8 picked, but fp32 (simpler) at its fastest would be within 5% of int8 at its slowest.
    assert not precision.pick_is_clear({"fp32": (0.40, 0.25, 0.45), "int8": (0.20, 0.19, 0.26)})


def test_describe_names_every_median_measured_and_the_rounds_in_one_line():
    trials = (
        precision.PrecisionTrial("fp32", 1.0, True, seconds=0.3741, low=0.37, high=0.38),
        precision.PrecisionTrial("bf16", 0.99998, True, seconds=0.1971, low=0.19, high=0.20),
        precision.PrecisionTrial("int8", 0.9999, True, seconds=0.1932, low=0.19, high=0.20),
    )
    choice = precision.PrecisionChoice("bf16", trials, True, rounds=6, timing_seconds=5.1, others_share=0.02)
    assert choice.describe() == (
        "bf16, picked automatically: median 0.197 s a photo against fp32 0.374 s and int8 0.193 s over 6 "
        "interleaved rounds (int8 within 5%: the simpler mode wins)"
    )
    int8 = precision.PrecisionChoice("int8", (trials[0], trials[2]), True, rounds=3)
    assert int8.describe() == "int8, picked automatically: median 0.193 s a photo against fp32 0.374 s over 3 interleaved rounds"
    busy = precision.PrecisionChoice("int8", (trials[0], trials[2]), True, rounds=4, others_share=0.6, busy_trials=1)
    assert busy.describe().endswith("; other programs used 60% of the CPU meanwhile, so it is measured again at the next start")
    assert "\n" not in busy.describe()


# --- kept, measured again, forgotten: the small model in fp32 and bf16 (no int8 conversion) -------


@pytest.fixture
def fp32_and_bf16(monkeypatch):
    monkeypatch.setattr(precision, "candidate_precisions", lambda device, native_bf16: ["fp32", "bf16"])


@pytest.fixture
def model_copy(small_model_file, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(small_model_file.read_bytes())
    return path


def test_an_entry_in_an_older_format_is_measured_again(fp32_and_bf16, model_copy):
    first = choose_precision(read_checkpoint(model_copy), CPU, native_bf16=True)
    kept_file = paths.data_dir() / "precision-trials.json"
    kept = json.loads(kept_file.read_text())
    ((key, entry),) = kept.items()
    assert entry["format"] == precision.FORMAT and entry["rounds"] == first.rounds >= 3
    assert [t["seconds"] > 0 for t in entry["trials"]] == [True, True]
    # As the first format kept it: a list of trials, "seconds" the fastest of two runs.
    kept_file.write_text(json.dumps({key: [{"precision": "fp32", "seconds": 0.1, "cosine": 1.0, "same_top5": True},
                                           {"precision": "bf16", "seconds": 0.05, "cosine": 1.0, "same_top5": True}]}))
    assert choose_precision(read_checkpoint(model_copy), CPU, native_bf16=True).measured_now
    kept_file.write_text(json.dumps({key: entry | {"trials": "damaged"}}))
    assert choose_precision(read_checkpoint(model_copy), CPU, native_bf16=True).measured_now
    assert not choose_precision(read_checkpoint(model_copy), CPU, native_bf16=True).measured_now


def test_a_trial_on_a_busy_computer_is_measured_again_until_it_is_quiet_or_busy_three_times(
    fp32_and_bf16, model_copy, monkeypatch
):
    shares = iter([0.6, 0.7, 0.1, 0.5, 0.5, 0.5])
    monkeypatch.setattr(precision, "others_cpu_share", lambda: lambda: next(shares))

    def load():
        return choose_precision(read_checkpoint(model_copy), CPU, native_bf16=True)

    busy = load()
    assert busy.busy and busy.busy_trials == 1 and not busy.settled and "measured again at the next start" in busy.describe()
    again = load()
    assert again.measured_now and again.busy_trials == 2
    quiet = load()
    assert quiet.measured_now and not quiet.busy and quiet.settled and quiet.busy_trials == 0
    assert not load().measured_now  # quiet: kept for good

    precision.forget_trials(model_copy)
    assert [load().busy_trials for _ in range(3)] == [1, 2, 3]
    kept = load()
    assert not kept.measured_now and kept.settled and kept.describe().endswith(
        "; other programs used 50% of the CPU meanwhile, as in 3 trials in a row, so it is kept"
    )


def test_forget_trials_measures_again_for_one_device_or_every_one(fp32_and_bf16, model_copy):
    checkpoint = read_checkpoint(model_copy)
    choice = choose_precision(checkpoint, CPU, native_bf16=True)
    ((where, kept),) = precision.kept_choices(model_copy)
    assert where.startswith("cpu, ") and f"torch {torch.__version__}" in where
    assert kept.describe() == choice.describe() and not kept.measured_now
    assert precision.forget_trials(model_copy, torch.device("mps")) == 0
    assert precision.forget_trials(checkpoint, CPU) == 1 and precision.kept_choices(model_copy) == []
    choose_precision(checkpoint, CPU, native_bf16=True)
    assert precision.forget_trials(str(model_copy)) == 1
    assert choose_precision(checkpoint, CPU, native_bf16=True).measured_now
    # A changed model file has no kept trial, and the old one is forgotten with the file's others.
    os.utime(model_copy, ns=(model_copy.stat().st_atime_ns, model_copy.stat().st_mtime_ns + 10**9))
    assert precision.kept_choices(model_copy) == []
    assert precision.forget_trials(model_copy) == 1


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux's /proc/stat")
def test_others_cpu_share_sees_programs_busy_on_this_process_cores():
    cores = sorted(os.sched_getaffinity(0))
    spin = f"import os, time\nos.sched_setaffinity(0, {cores})\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    watch = REAL_OTHERS_CPU_SHARE()
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in cores]
    try:
        time.sleep(1.0)
        share = watch()
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert share is not None and share > 0.5


# --- the command line ------------------------------------------------------------------------------


def test_model_retune_measures_again_and_model_list_shows_the_kept_line(fp32_and_bf16, small_model_file, capsys):
    assert main(["model", "import", str(small_model_file)]) == 0
    assert main(["model", "list"]) == 0
    assert "precision on" not in capsys.readouterr().out  # nothing measured yet
    assert main(["model", "retune"]) == 0
    captured = capsys.readouterr()
    (model,) = ModelStore().models()
    ((where, kept),) = precision.kept_choices(model.path)
    assert captured.out == f"{model.name}: {kept.describe()}\n"
    assert "checking bf16 against fp32" in captured.err and "round 3: medians fp32" in captured.err

    assert main(["model", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith(f"* {model.name}")
    assert listed[1] == f"    precision on {where}: {kept.describe()}"

    assert main(["model", "retune", model.name, "--device", "cpu"]) == 0
    ((_, again),) = precision.kept_choices(model.path)
    assert again.timing_seconds != kept.timing_seconds  # measured again, not read back
    assert main(["model", "retune", "ghost"]) == 2
    assert "No installed model is called 'ghost'" in capsys.readouterr().err


@pytest.mark.slow
def test_model_retune_with_every_mode_of_this_cpu(small_model_file, capsys):
    """As a person runs it: fp32, bf16 where native, and int8 (converted now: about 10 s)."""
    assert main(["model", "import", str(small_model_file)]) == 0
    capsys.readouterr()
    assert main(["model", "retune"]) == 0
    captured = capsys.readouterr()
    (model,) = ModelStore().models()
    ((_, kept),) = precision.kept_choices(model.path)
    assert [t.precision for t in kept.trials] == candidate_precisions(CPU, native_bf16=cpu_has_native_bf16())
    assert captured.out == f"{model.name}: {kept.describe()}\n"
    assert "checking int8 against fp32" in captured.err and "Preparing the int8 copy" in captured.err
    assert kept.precision == Classifier.from_file(model.path, device="cpu").precision

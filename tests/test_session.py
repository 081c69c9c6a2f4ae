"""The window's state without its widgets: the session's one guard against stale answers."""

from __future__ import annotations

from birdid_app.gui.session import PhotoEntry, PhotoSession, Tickets


def test_a_newer_ticket_or_a_withdrawal_makes_the_old_one_stale():
    tickets = Tickets()
    first = tickets.issue("overlay", "mean")
    second = tickets.issue("overlay", "pca")
    assert tickets.take(first) is None and not tickets.is_current(first)
    assert tickets.take(second) == ("overlay", "pca")
    assert tickets.take(second) is None  # each answer is taken once
    third = tickets.issue(("identify", 1))
    assert tickets.withdraw(("identify", 1)) == third and tickets.take(third) is None
    other = tickets.issue(("identify", 2))
    assert tickets.current(("identify", 2)) == other  # purposes do not disturb each other


class Recorder:
    def __init__(self, session: PhotoSession) -> None:
        self.events = []
        session.answer_changed.connect(lambda entry: self.events.append(("answer", entry.source)))
        session.request_stopped.connect(lambda entry: self.events.append(("stopped", entry.source)))
        session.cam_ready.connect(lambda entry, key: self.events.append(("cam", key)))
        session.cam_ended.connect(lambda message: self.events.append(("cam ended", message)))


class Outcome:
    """Stands in for the engine's IdentifyOutcome: the session only stores it."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_an_answer_for_a_region_given_up_is_dropped_and_the_new_one_kept(qapp):
    session = PhotoSession()
    recorder = Recorder(session)
    entry = PhotoEntry("a.jpg")
    session.add([entry])
    session.select(0)
    whole, _ = session.identify_ticket(entry)
    assert session.pending(entry) == whole
    stale = session.set_region(entry, (1, 2, 30, 40))
    assert stale == whole and session.pending(entry) is None
    region_request, replaced = session.identify_ticket(entry)
    assert replaced is None
    session.accept_identified(whole, Outcome("late, for the whole photo"))
    assert entry.whole is None and recorder.events == []
    session.accept_identified(region_request, Outcome("the region"))
    assert entry.region_outcome.name == "the region" and recorder.events == [("answer", "a.jpg")]


def test_failures_and_cancellations_end_the_request_they_belong_to(qapp):
    session = PhotoSession()
    recorder = Recorder(session)
    entry = PhotoEntry("b.jpg")
    session.add([entry])
    failing, _ = session.identify_ticket(entry)
    session.accept_failed(failing, "b.jpg: This is not an image birdid can read.")
    assert entry.error.endswith("read.")
    cam, _ = session.cam_ticket(entry, (None, 3, 2))
    newer_cam, replaced = session.cam_ticket(entry, (None, 4, 2))
    assert replaced == cam
    session.accept_cancelled(cam)  # the engine confirms the replaced one: already forgotten
    session.accept_cam(newer_cam, "map")
    assert entry.cams == {(None, 4, 2): "map"} and not session.cam_waiting()
    stopped, _ = session.identify_ticket(entry)
    session.accept_cancelled(stopped)
    assert recorder.events == [("answer", "b.jpg"), ("cam", (None, 4, 2)), ("stopped", "b.jpg")]


class FakeEngine:
    """Stands in for the engine: records what the session sends and cancels."""

    def __init__(self) -> None:
        self.calls = []

    def send(self, request) -> None:
        self.calls.append(("send", request))

    def cancel(self, request_id: int) -> None:
        self.calls.append(("cancel", request_id))


def test_send_issues_a_ticket_cancels_what_it_replaces_and_sends_the_request(qapp):
    engine = FakeEngine()
    session = PhotoSession(engine=engine)
    entry = PhotoEntry("c.jpg")
    session.add([entry])
    first = session.send("identify", entry, lambda request_id: ("identify", request_id))
    second = session.send("identify", entry, lambda request_id: ("identify", request_id))
    assert session.pending(entry) == second
    assert engine.calls == [("send", ("identify", first)), ("cancel", first), ("send", ("identify", second))]
    engine.calls.clear()
    cam = session.send("cam", entry, lambda request_id: ("cam", request_id), key=(None, 3, 2))
    zoom = session.send("zoom", entry, lambda request_id: ("zoom", request_id))
    check = session.send("check", entry, lambda request_id: ("check", request_id))
    assert engine.calls == [("send", ("cam", cam)), ("send", ("zoom", zoom)), ("send", ("check", check))]
    assert session.cam_waiting() and session.zoom_pending(entry) and session.check_pending(entry)
    engine.calls.clear()
    session.set_region(entry, (1, 2, 3, 4))  # the whole photo's identification no longer applies
    session.cancel_zoom(entry)
    assert engine.calls == [("cancel", second), ("cancel", zoom)] and entry.zoom == "The zoom was cancelled."

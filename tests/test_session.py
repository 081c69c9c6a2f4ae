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

"""Errors a person can act on: each one's message is one sentence naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


def sentence(text: str) -> str:
    """`text` with a capital first letter: every message birdid shows starts like a sentence,
    whether it follows "birdid: " on a terminal or "PATH: " or stands alone in the window. The
    app's own name is the one word that keeps its small letter ("birdid could not write…")."""
    if text.startswith("birdid") and not text[6:7].isalnum():
        return text
    return text[:1].upper() + text[1:]


class BirdidError(Exception):
    """Base of every error birdid reports to the user rather than as a traceback."""


class FileProblem(BirdidError):
    """A problem with one file. `str()` gives the sentence to show; `path` and `problem` the parts."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = sentence(problem)
        super().__init__(f"{self.path}: {self.problem}")


class PhotoError(FileProblem):
    """A photo that cannot be decoded; the other photos in a batch carry on."""


class CheckpointError(FileProblem):
    """A model file that cannot be used."""


class NoModelError(BirdidError):
    """No model is installed and none was given."""


class Cancelled(BirdidError):
    """A job stopped because the person asked it to; whatever it had half-done is not trusted."""

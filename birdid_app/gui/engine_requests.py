"""What the window sends the engine thread (engine.py) and what it hears back: the requests, the
settings a model loads with, and the outcomes, with the functions that build an outcome from the
model's answer (off the GUI thread: the engine calls them). torch is not imported here."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QImage

from birdid_app.core.model.model_store import InstalledModel
from birdid_app.gui.images import qimage_from_pil

if TYPE_CHECKING:  # torch is loaded on the engine thread, with the model
    from birdid_app.core.model.inference import Classifier
    from birdid_app.core.places.range_prior import RangePrior

Region = tuple[int, int, int, int]  # x, y, width, height in upright image pixels


@dataclass(frozen=True)
class IdentifyRequest:
    request_id: int
    source: str  # how the window names the photo: its path, or "Pasted image"
    path: Path | None = None  # a file to decode, or
    image: Any = None  # an upright RGB PIL image already decoded (a pasted one)
    region: Region | None = None
    # Where the photo was taken, as the window knows it: a place a person set for the photo or its
    # folder, (latitude, longitude, "person" | "folder"), and the home place in Settings; the
    # photo's own GPS and date are read here. As `birdid identify` does (cli/identify.py).
    assigned_place: tuple[float, float, str] | None = None
    home_place: tuple[float, float] | None = None


@dataclass(frozen=True)
class AnswerRequest:
    """A question about the answer `class_index` for the photo (or its region): the fields an
    explanation and a check share."""

    request_id: int
    source: str
    path: Path | None
    image: Any
    region: Region | None
    class_index: int


@dataclass(frozen=True)
class ExplainRequest(AnswerRequest):
    """A class-activation map for one species on one stage of the photo (or region)."""

    stage: int  # 1-4


@dataclass(frozen=True)
class ZoomRequest:
    """The whole photo identified again on the box where the evidence for `class_index` lies."""

    request_id: int
    source: str
    path: Path | None
    image: Any
    class_index: int  # the whole photo's answer
    assigned_place: tuple[float, float, str] | None = None  # as IdentifyRequest's: the zoom's answer is placed too
    home_place: tuple[float, float] | None = None


@dataclass(frozen=True)
class CheckRequest(AnswerRequest):
    """The answer `class_index` checked against the photo (or region) mirrored and cropped twice."""


@dataclass(frozen=True)
class EngineSettings:
    device: str = "auto"
    precision: str = "auto"
    cpu_threads: int = 0  # 0: torch's default


@dataclass(frozen=True)
class LoadedModel:
    name: str
    trust: str  # "verified", or "unverified, imported from …"
    device: str
    precision: str
    precision_reason: str  # e.g. "bf16, picked automatically: 0.48x fp32's time on this computer, …"
    class_names: list[str]
    devices: list[tuple[str, str]]  # (value, label) of every device this machine offers
    head: tuple[Any, Any]  # the classifier layer as numpy (weight [classes, dim], bias [classes]): core.trust needs it


@dataclass(frozen=True)
class RangePriorState:
    """What the engine's range prior is now: said after each model load and reload_range_prior."""

    installed: bool  # a range model is installed
    sha256: str | None  # the range model in use; None: none is (not installed, or it could not be used)
    matched: int = 0  # the model's species the range model has a range for
    species: int = 0  # the model's species
    problem: str | None = None  # why an installed range model is not used, one sentence


@dataclass(frozen=True)
class IdentifyOutcome:
    request: IdentifyRequest
    identification: Any  # core Identification: probabilities, embedding, stage maps
    ranked: list[Any]  # every species as a core SpeciesScore, most likely first
    doubt: str | None  # why the top answer is not to be trusted, or None
    model_view: QImage  # the picture the model looked at: the photo or region squashed to its input
    seconds: float  # decoding and inference
    # Where and when, and the answer with the range prior (computed here, never on the GUI thread):
    range_model: str | None = None  # the SHA-256 of the range model the answer used; None: there was none
    place_answer: Any = None  # core PlaceAnswer; None without a range model or a known place
    where_notes: list[str] = field(default_factory=list)  # resolve_where's sentences
    place_words: str | None = None  # core.place.place_name of the place ("Texel, North Holland, Netherlands")
    place_ranked: list[Any] = field(default_factory=list)  # every species as a PlacedSpecies, by picture and place
    place_by_picture: list[Any] = field(default_factory=list)  # the same by the picture alone
    place_doubt: str | None = None  # doubt() of place_ranked


@dataclass(frozen=True)
class ZoomOutcome:
    box: Region | None  # where the evidence is, in the photo's pixels; None when zooming would not help
    reason: str  # one sentence: why that box, or why none
    outcome: IdentifyOutcome | None  # the answer for the box, as a region's answer; None without a box




@dataclass(frozen=True)
class LoadModel:
    model: InstalledModel
    settings: EngineSettings


def loaded_model(model: InstalledModel, classifier: Classifier) -> LoadedModel:
    """What model_loaded says: `model` as `classifier`, the model built from it, runs it."""
    from birdid_app.core.model.inference import available_devices

    return LoadedModel(
        name=model.name,
        trust=model.trust_label,
        device=str(classifier.device),
        precision=classifier.precision,
        precision_reason=classifier.precision_reason,
        class_names=list(classifier.class_names),
        devices=available_devices(),
        head=classifier.head_weights(),
    )


def identify_outcome(classifier: Classifier, prior: RangePrior | None, request: IdentifyRequest, identification, image,
                     started: float, notice: Callable[[str], None]) -> IdentifyOutcome:
    """`identification` of `image` as the window shows it: ranked, doubted, with the picture
    the model saw, placed (where and when, and the answer with the range prior), and the
    seconds since `started`."""
    from birdid_app.core.model.inference import doubt
    from birdid_app.core.model.preprocess import squash_to_input_size

    ranked = identification.ranked()
    model_view = qimage_from_pil(squash_to_input_size(image, classifier.image_size))
    place = place_fields(prior, request, identification, notice)
    return IdentifyOutcome(request, identification, ranked, doubt(ranked), model_view, time.perf_counter() - started,
                           **place)


def place_fields(prior: RangePrior | None, request: IdentifyRequest, identification,
                 notice: Callable[[str], None]) -> dict:
    """IdentifyOutcome's place fields for a request: where and when as `birdid identify`
    resolves it, and the answer with the range prior. Nothing without a range prior."""
    from birdid_app.core.model.inference import doubt
    from birdid_app.core.photos.photo import photo_metadata
    from birdid_app.core.places.place import PlaceError, place_name, resolve_where

    if prior is None:
        return {}
    taken_at, latitude, longitude = photo_metadata(request.path) if request.path is not None else (None,) * 3
    assigned = request.assigned_place
    where, notes = resolve_where(
        option_place=None, option_date=None, photo_taken_at=taken_at, photo_latitude=latitude,
        photo_longitude=longitude, assigned_place=assigned[:2] if assigned else None,
        assigned_source=assigned[2] if assigned else "person", settings_place=request.home_place,
    )
    placed: dict = {"range_model": prior.geomodel.sha256, "where_notes": notes}
    if where is None:
        return placed
    try:
        answer = prior.answer(identification.probabilities, where)
    except Exception as error:  # noqa: BLE001 - the range model failing on one place must not lose the picture's answer
        traceback.print_exc()
        notice(f"The range model failed on this place ({type(error).__name__}): ranked by the picture alone.")
        return {}
    try:
        words = place_name(where.latitude, where.longitude)  # the first call reads the list of towns: ~1 s
    except PlaceError:
        words = None  # the offline list of towns is unreadable: the place is shown as coordinates
    by_place = answer.ranked()
    return placed | {
        "place_answer": answer, "place_words": words, "place_ranked": by_place,
        "place_by_picture": answer.ranked_by_picture(), "place_doubt": doubt(by_place),
    }

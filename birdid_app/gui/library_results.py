"""What a result in the Library tab's grid says: the species, how likely, when the photo was
taken, and for a similarity search how alike it is, kept apart from the species' probability.
Plain text from a library photo; no Qt, so the wording is checked without a window."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from birdid_app.core.library import NOT_A_BIRD, UNKNOWN_SPECIES, LibraryPhoto

# What a hit's number is: a species' probability (a species search), a cosine similarity of the
# embeddings (similar photos), the group a photo is in (near-duplicates), or for a burst a
# BurstFrame (its group, its sharpness on the bird, whether it is the suggested best frame).
Score = Literal["probability", "similarity", "group", "burst"]


@dataclass(frozen=True)
class BurstFrame:
    group: int
    sharpness: float | None  # the variance of the Laplacian on the bird; None: not scored yet
    best: bool


def probability_text(probability: float) -> str:
    """87%; above 99% one decimal, rounded down, so that only a certain answer reads 100%."""
    if 0.99 <= probability < 1:
        return f"{math.floor(probability * 1000) / 10:.1f}%"
    return f"{probability:.0%}"


def taken_text(taken_at: str | None) -> str:
    """The capture date as the library keeps it ("2024-05-01T07:12:03"), to the minute."""
    if not taken_at:
        return "no date"
    return taken_at.replace("T", " ")[:16]


def shown_species(photo: LibraryPhoto, searched: str | None = None) -> tuple[str, float | None]:
    """The species a result is shown as and the model's probability for it: the species searched
    for, else the person's label, else the model's best match."""
    probabilities = dict(photo.species)
    if searched is not None:
        return searched, probabilities.get(searched)
    if photo.label is not None:
        return photo.label, probabilities.get(photo.label)
    if photo.species:
        return photo.species[0]
    return "not identified", None


def result_caption(photo: LibraryPhoto, value: float | int | BurstFrame | None, score: Score, searched: str | None = None) -> str:
    """Three short lines under the thumbnail: species; probability (and "yours", the similarity
    or the group); capture date. For a burst's frame: species; its sharpness (and ★ for the
    suggested best); its burst and the second it was taken."""
    species, probability = shown_species(photo, searched)
    if score == "probability" and isinstance(value, float):
        probability = value  # the probability the search ranked by
    details = [probability_text(probability)] if probability is not None else []
    if photo.label is not None and photo.label.casefold() == species.casefold():
        details.append("yours")  # labelled so by the person
    if score == "similarity" and value is not None:
        details.append(f"alike {value:.2f}")
    elif score == "group" and value is not None:
        details.append(f"group {value}")
    if score == "burst" and isinstance(value, BurstFrame):
        # A cell is ~170 pixels wide: what tells the frames of a burst apart (how sharp, which is
        # best, the second it was taken) goes first; the probability is in the tooltip.
        sharp = "not scored" if value.sharpness is None else f"sharp {value.sharpness:.0f}"
        taken = photo.taken_at.replace("T", " ")[11:19] if photo.taken_at else "no time"
        return "\n".join((species, f"★ best · {sharp}" if value.best else sharp, f"burst {value.group} · {taken}"))
    return "\n".join((species, " · ".join(details) or "–", taken_text(photo.taken_at)))


def result_tooltip(photo: LibraryPhoto, value: float | int | BurstFrame | None, score: Score) -> str:
    """Everything about a result, a line each: path, date, label, the model's top species, and the
    similarity with what it means."""
    lines = [str(photo.path), f"Taken: {taken_text(photo.taken_at)}"]
    if photo.label is not None:
        meaning = {NOT_A_BIRD: " (no bird in it)", UNKNOWN_SPECIES: " (a bird you could not name)"}.get(photo.label, "")
        lines.append(f"Your label: {photo.label}{meaning}")
    if photo.species:
        lines.append("The model: " + ", ".join(f"{name} {probability_text(p)}" for name, p in photo.species))
    elif photo.error:
        lines.append(f"Not identified: {photo.error}")
    if score == "similarity" and value is not None:
        lines.append(f"Alike {value:.3f}: how alike it looks to the photo searched with (1 is the same look)")
    if score == "burst" and isinstance(value, BurstFrame):
        if value.sharpness is not None:
            lines.append(f"Sharpness on the bird {value.sharpness:.1f} (the variance of the Laplacian; "
                         "higher is sharper, comparable within a burst)")
        if value.best:
            lines.append("The suggested best frame of its burst: the sharpest on the bird")
    return "\n".join(lines)

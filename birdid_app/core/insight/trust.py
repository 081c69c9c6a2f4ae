"""How far to trust an answer: zooming on the bird, and three signals beside the ranking.

- **Zoom** (`evidence_box`, `zoom_identify`): the model squashes the whole photo to its input
  square, so a small bird is a few cells of it. The class-activation map of the first answer says
  where the evidence is; that part of the photo, with a margin and at full resolution, is
  identified again. Both answers are kept; `preferred` says which the model is surer of.
- **Mirror and crops** (`tta_agreement`): the same photo mirrored and cropped twice, one batch,
  one forward. An answer that changes when the bird faces the other way or sits a little
  off-centre rests on something fragile.
- **Your confirmed photos** (`neighbour_vote`): the person's own labels on the photos nearest to
  this one in the library, a vote weighted by similarity.
- **Unfamiliar photo** (`energy_scores`, `familiarity`): how strongly the photo matches any of
  the model's species at all (the energy score: the log of the summed exponentials of the
  logits), against the same score for the photos in the person's library.

None of them changes or blocks the answer; each says in one line what it found and, in another,
what it is and is not. No Qt here: the window and the command line both call this module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    from birdid_app.core.library import Library
    from birdid_app.core.model.inference import Classifier, Identification

Region = tuple[int, int, int, int]  # x, y, width, height in image pixels

# --- zoom ------------------------------------------------------------------------------------

# Grad-CAM on stage 3, the deepest with room to place a small bird: 24x24 cells of 16 input
# pixels at 384x384 (stage 4's 12x12 cells are each 1/144 of the photo, so a bird a few percent of
# the frame would get a box of half the photo), and where the base model has 16 of its 24 blocks.
ZOOM_STAGE = 3
EVIDENCE_LEVEL = 0.5  # cells at or above half the map's peak are evidence
ZOOM_MARGIN = 0.5  # the box grows by half its size (a quarter on each side): the whole bird, some context
# A box covering more than this share of the photo would show the model nearly what it saw.
ZOOM_MAX_AREA = 0.6
ZOOM_MIN_SIDE = 32  # pixels: a crop smaller than this is too little to identify anything from


@dataclass(frozen=True)
class ZoomBox:
    box: Region | None  # where to look again, in the image's pixels; None when zooming would not help
    reason: str  # one sentence: why this box, or why none


def evidence_box(cam: np.ndarray, image_size: tuple[int, int], *, level: float = EVIDENCE_LEVEL,
                 margin: float = ZOOM_MARGIN, max_area: float = ZOOM_MAX_AREA) -> ZoomBox:
    """The part of an image of `image_size` (width, height) that holds the evidence in `cam`
    ([h, w] in 0..1, stretched over the whole image, as the model's input was squashed from it).

    The cells at or above `level` of the peak that are connected to the peak (a second bird
    elsewhere does not stretch the box over the empty sky between them), their bounding box,
    grown by `margin` of its size and made square in the image's pixels (the model's input is
    square, so a square crop is not distorted), moved inside the image."""
    width, height = image_size
    rows, cols = cam.shape
    peak = float(cam.max())
    if peak <= 0:
        return ZoomBox(None, "The model found no evidence to zoom on.")
    hot = cam >= level * peak
    peak_row, peak_col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    component = _connected_to(hot, (int(peak_row), int(peak_col)))
    found_rows, found_cols = np.nonzero(component)
    # Cells to image pixels: cell (r, c) covers x in [c * width / cols, (c + 1) * width / cols).
    left, right = found_cols.min() * width / cols, (found_cols.max() + 1) * width / cols
    top, bottom = found_rows.min() * height / rows, (found_rows.max() + 1) * height / rows
    side = max(right - left, bottom - top) * (1 + margin)
    side = max(side, ZOOM_MIN_SIDE)
    box_width, box_height = min(side, width), min(side, height)
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    x = min(max(centre_x - box_width / 2, 0), width - box_width)
    y = min(max(centre_y - box_height / 2, 0), height - box_height)
    box = (round(x), round(y), round(box_width), round(box_height))
    share = box[2] * box[3] / (width * height)
    if share > max_area:
        return ZoomBox(None, f"The evidence spans {share:.0%} of the photo: the bird already fills it, "
                             "so zooming would show the model nearly the same picture.")
    return ZoomBox(box, f"The evidence lies in {share:.0%} of the photo.")


def _connected_to(mask: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """The cells of `mask` joined to `start` through neighbours (8-connected), as a mask."""
    found = np.zeros_like(mask, dtype=bool)
    stack = [tuple(int(v) for v in start)]
    while stack:
        r, c = stack.pop()
        if found[r, c] or not mask[r, c]:
            continue
        found[r, c] = True
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                nr, nc = r + dr, c + dc
                if 0 <= nr < mask.shape[0] and 0 <= nc < mask.shape[1] and not found[nr, nc]:
                    stack.append((nr, nc))
    return found


def zoom_box_for(classifier: Classifier, image: Image.Image, class_index: int, stage: int = ZOOM_STAGE) -> ZoomBox:
    """Where the evidence for `class_index` lies in `image` (the upright photo, at the resolution
    the crop should have): Grad-CAM, then `evidence_box`."""
    from birdid_app.core.insight.explain import cam_for

    return evidence_box(cam_for(classifier, image, class_index, stage), image.size)


@dataclass
class Zoomed:
    """The whole photo's answer and, where zooming helped, the answer for the box."""

    whole: Identification
    zoom: ZoomBox
    zoomed: Identification | None  # of the crop; None without a box

    def preferred(self) -> Identification:
        """The answer the model is surer of: the crop's when its best probability is higher."""
        if self.zoomed is not None and self.zoomed.probabilities.max() > self.whole.probabilities.max():
            return self.zoomed
        return self.whole


def zoom_identify(classifier: Classifier, images: Sequence[Image.Image], sources: Sequence[str],
                  *, keep_stage_maps: bool = False) -> list[Zoomed]:
    """Identify each image, then again on the box where the evidence for its answer lies.
    Images should be decoded at full resolution: the crop is taken from them."""
    wholes = classifier.identify_images(images, sources, keep_stage_maps=keep_stage_maps)
    results = []
    for image, source, whole in zip(images, sources, wholes, strict=True):
        zoom = zoom_box_for(classifier, image, int(np.argmax(whole.probabilities)))
        zoomed = None
        if zoom.box is not None:
            crop = image.crop((zoom.box[0], zoom.box[1], zoom.box[0] + zoom.box[2], zoom.box[1] + zoom.box[3]))
            (zoomed,) = classifier.identify_images([crop], [source], keep_stage_maps=keep_stage_maps)
        results.append(Zoomed(whole, zoom, zoomed))
    return results


def index_identifier(classifier: Classifier, *, zoom: bool, keep_stage_maps: bool = False):
    """(identify, decode_size, prepare) for an IndexJob: the plain forward on photos decoded near
    the model's input size and squashed to it on the decoder threads, or with `zoom`, the answer
    the model is surer of (whole photo or the zoom on its evidence) on photos decoded at full
    resolution, which the crop needs. With `keep_stage_maps` each Identification carries the
    stage maps of the whole photo's forward (for culling's bird box), else none."""
    from birdid_app.core.model.preprocess import squash_to_input_size  # torch: not before the window shows

    if not zoom:
        return ((lambda images: classifier.identify_images(images, keep_stage_maps=keep_stage_maps)),
                classifier.image_size, lambda image: squash_to_input_size(image, classifier.image_size))

    def identify_zoomed(images):
        zoomed = zoom_identify(classifier, images, [f"photo {i + 1}" for i in range(len(images))],
                               keep_stage_maps=keep_stage_maps)
        # The zoom's own forward keeps its maps too; the whole photo's are the ones wanted.
        return [replace(z.preferred(), stage_maps=z.whole.stage_maps) if keep_stage_maps else z.preferred()
                for z in zoomed]

    return identify_zoomed, None, None


# --- the signals -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustSignal:
    title: str  # what the signal is, in two or three words
    state: str  # "agrees", "disagrees", "warning" or "unknown": how the window colours it
    finding: str  # one line: what it found for this photo
    meaning: str  # one line: what the signal is and is not


AGREES, DISAGREES, WARNING, UNKNOWN = "agrees", "disagrees", "warning", "unknown"

# Mirror and crops --------------------------------------------------------------------------

TTA_CROP = 0.85  # each crop keeps 85% of the width and height
TTA_VIEWS = ("mirrored", "cropped to the upper left", "cropped to the lower right")


def tta_views(image: Image.Image) -> list[Image.Image]:
    """The photo mirrored left to right, and two crops of TTA_CROP of each side from opposite
    corners (the bird moves within the frame, as it would a little earlier or later)."""
    width, height = image.size
    crop_width, crop_height = max(1, round(width * TTA_CROP)), max(1, round(height * TTA_CROP))
    return [
        ImageOps.mirror(image),
        image.crop((0, 0, crop_width, crop_height)),
        image.crop((width - crop_width, height - crop_height, width, height)),
    ]


@dataclass(frozen=True)
class Agreement:
    answer: str  # the species the photo's answer named
    views: tuple[tuple[str, str, float], ...]  # (view, its best species, its probability of `answer`)

    @property
    def agreeing(self) -> int:
        return sum(best == self.answer for _, best, _ in self.views)

    def signal(self) -> TrustSignal:
        total = len(self.views)
        meaning = ("Whether the answer survives a mirror image and two crops; a fragile answer changes, "
                   "but agreement does not make it right.")
        if self.agreeing == total:
            finding = f"{self.answer} in all {total}: mirrored and cropped twice."
            return TrustSignal("Mirror and crops", AGREES, finding, meaning)
        others = Counter(best for _, best, _ in self.views if best != self.answer)
        named = ", ".join(f"{name} ({count})" for name, count in others.most_common())
        finding = f"{self.answer} in {self.agreeing} of {total}; otherwise {named}."
        return TrustSignal("Mirror and crops", DISAGREES, finding, meaning)


def tta_agreement(classifier: Classifier, image: Image.Image, class_index: int) -> Agreement:
    """The answer `class_index` against the mirrored and cropped views: one batch, one forward."""
    names = classifier.class_names
    results = classifier.identify_images(tta_views(image), list(TTA_VIEWS), keep_stage_maps=False)
    views = tuple(
        (view, names[int(np.argmax(r.probabilities))], float(r.probabilities[class_index]))
        for view, r in zip(TTA_VIEWS, results, strict=True)
    )
    return Agreement(names[class_index], views)


# Your confirmed photos ---------------------------------------------------------------------

NEIGHBOURS = 7  # confirmed photos that vote
MIN_NEIGHBOUR_SIMILARITY = 0.5  # below this cosine a labelled photo is not "near" enough to vote


@dataclass(frozen=True)
class NeighbourVote:
    answer: str
    neighbours: tuple[tuple[int, str, float], ...]  # (photo id, its label, cosine), nearest first
    confirmed: int  # how many labelled photos the library has (by the reading model)

    def tally(self) -> list[tuple[str, float]]:
        """(label, share of the similarity-weighted vote), largest first."""
        weights: dict[str, float] = {}
        for _, label, similarity in self.neighbours:
            weights[label] = weights.get(label, 0.0) + similarity
        total = sum(weights.values())
        heaviest = sorted(weights.items(), key=lambda item: item[1], reverse=True)  # as Counter.most_common
        return [(label, weight / total) for label, weight in heaviest] if total else []

    def signal(self) -> TrustSignal:
        meaning = ("The labels you gave the photos in your library most like this one; "
                   "it knows only what you have confirmed.")
        if not self.confirmed:
            return TrustSignal("Your confirmed photos", UNKNOWN,
                               "You have not labelled any photos in your library yet.", meaning)
        if not self.neighbours:
            return TrustSignal("Your confirmed photos", UNKNOWN,
                               "None of your labelled photos looks like this one.", meaning)
        tally = self.tally()
        votes = Counter(label for _, label, _ in self.neighbours)
        leader, share = tally[0]
        count = len(self.neighbours)
        nearest = self.neighbours[0][2]
        if leader == self.answer:
            finding = f"{votes[leader]} of your {count} nearest labelled photos are {leader} (nearest {nearest:.2f} alike)."
            return TrustSignal("Your confirmed photos", AGREES, finding, meaning)
        finding = (f"{votes[leader]} of your {count} nearest labelled photos are {leader}, "
                   f"{votes.get(self.answer, 0)} {self.answer} (nearest {nearest:.2f} alike).")
        return TrustSignal("Your confirmed photos", DISAGREES, finding, meaning)


def neighbour_vote(answer: str, embedding: np.ndarray, labelled_ids: np.ndarray, labelled_vectors: np.ndarray,
                   labels: Sequence[str], *, k: int = NEIGHBOURS,
                   min_similarity: float = MIN_NEIGHBOUR_SIMILARITY) -> NeighbourVote:
    """The k labelled photos most like `embedding` (cosine, at least `min_similarity`) and their labels.
    labelled_ids [n], labelled_vectors [n, d] (not necessarily normalised), labels: n names."""
    if labelled_vectors.shape[0] == 0:
        return NeighbourVote(answer, (), 0)
    query = np.asarray(embedding, dtype=np.float64)
    query = query / max(float(np.linalg.norm(query)), 1e-12)
    vectors = labelled_vectors.astype(np.float64)
    similarities = vectors @ query / np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)  # [n]
    order = np.argsort(-similarities, kind="stable")[:k]
    neighbours = tuple(
        (int(labelled_ids[i]), labels[i], float(similarities[i])) for i in order if similarities[i] >= min_similarity
    )
    return NeighbourVote(answer, neighbours, int(labelled_vectors.shape[0]))


# Unfamiliar photo --------------------------------------------------------------------------

# A photo scoring lower than all but this share of the library's photos is called unfamiliar.
UNFAMILIAR_SHARE = 0.02
MIN_REFERENCE = 30  # library photos needed before the comparison means anything
REFERENCE_SAMPLE = 5000  # library photos scored for the comparison (a fixed random sample)


def energy_scores(embeddings: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The energy score of each embedding [n, d] through the model's classifier (weight [c, d],
    bias [c]): log(sum(exp(logits))), [n] float64. High: strong evidence for some species the model
    knows. It uses the logits before the softmax, which hides how much evidence there was
    (Liu et al., "Energy-based out-of-distribution detection", 2020)."""
    # float32 products (5,000 photos x 707 species in ~0.1 s), float64 from there on.
    logits = (embeddings.astype(np.float32) @ weight.astype(np.float32).T).astype(np.float64) + bias  # [n, c]
    peak = logits.max(axis=1, keepdims=True)
    return (peak + np.log(np.exp(logits - peak).sum(axis=1, keepdims=True)))[:, 0]


@dataclass(frozen=True)
class Familiarity:
    score: float  # this photo's energy score
    below: float | None  # the share of the reference photos scoring no higher; None without a reference
    reference: int  # how many library photos were compared

    def signal(self) -> TrustSignal:
        meaning = ("How strongly the photo matches any species the model knows, against your library's photos; "
                   "not the chance the answer is right, and a bird it was never taught can still match.")
        if self.below is None:
            return TrustSignal("Unfamiliar photo", UNKNOWN,
                               f"Too few identified photos in your library to compare with (needs {MIN_REFERENCE}).",
                               meaning)
        if self.below < UNFAMILIAR_SHARE:
            finding = (f"Unlike what the model was trained on: it matches its species more weakly than "
                       f"{1 - self.below:.0%} of the {self.reference:,} photos in your library.")
            return TrustSignal("Unfamiliar photo", WARNING, finding, meaning)
        finding = (f"Familiar: it matches the model's species at least as strongly as {self.below:.0%} "
                   "of your library's photos.")
        return TrustSignal("Unfamiliar photo", AGREES, finding, meaning)


def familiarity(score: float, reference: np.ndarray) -> Familiarity:
    """`score` against the reference scores [n] (the library's photos)."""
    if reference.shape[0] < MIN_REFERENCE:
        return Familiarity(score, None, int(reference.shape[0]))
    return Familiarity(score, float(np.mean(reference <= score)), int(reference.shape[0]))


def library_signals(library: Library, answer: str, embedding: np.ndarray, head: tuple[np.ndarray, np.ndarray],
                    *, exclude: Iterable[int] = ()) -> tuple[NeighbourVote, Familiarity]:
    """The two signals the library gives for a photo whose answer is `answer` and whose
    embedding (as the model gave it, by the library's reading model) is `embedding`.
    head: the model's classifier, (weight [c, d], bias [c]). `exclude`: the photo's own id when
    it is in the library, so its own label does not vote for itself."""
    ids, vectors, labels = library.labelled_vectors()
    if not len(ids):  # an empty library's index has a default width, not this model's
        vectors = np.zeros((0, np.asarray(embedding).shape[-1]), dtype=np.float32)
    keep = ~np.isin(ids, np.fromiter(exclude, dtype=np.int64))
    vote = neighbour_vote(answer, embedding, ids[keep], vectors[keep], [label for label, k in zip(labels, keep, strict=True) if k])
    weight, bias = head
    score = float(energy_scores(np.asarray(embedding)[None], weight, bias)[0])
    sample = library.sample_embeddings(REFERENCE_SAMPLE)
    reference = energy_scores(sample, weight, bias) if len(sample) else np.zeros(0, dtype=np.float32)
    return vote, familiarity(score, reference)


def without_library(path: object = None) -> list[TrustSignal]:
    """The two library signals when there is no library to read (none made yet)."""
    where = f" at {path}" if path is not None else ""
    return [
        replace(NeighbourVote("", (), 0).signal(), finding=f"There is no photo library{where} yet: index your photos to compare."),
        replace(Familiarity(0.0, None, 0).signal(), finding=f"There is no photo library{where} yet to compare with."),
    ]

"""Where the bird is, for culling, from the forward that identified the photo: no second pass.

Grad-CAM (explain.py) needs a backward pass per photo, about as slow again as the forward: too
slow to run on every photo of a card. The classifier reads the mean of the last stage's tokens
through a LayerNorm and one linear layer, so each of the last stage's cells can be read through
the same layer (each cell normalised on its own, the LayerNorm's scale folded into the weights):
the class-activation map (Zhou et al., "Learning Deep Features for Discriminative Localization",
2016) of the answer, 12x12 cells at 384x384. It is an approximation (the LayerNorm runs on the
mean, not on each cell) and coarser than the zoom's stage-3 Grad-CAM, but it is free, and
`evidence_box` turns it into a box as the zoom does, without the zoom's margin of context. When the box would cover most of the
photo (the bird fills the frame) or the map is flat, culling scores the centre instead
(core/photos/sharpness.py's centre_box).

`index_steps` is `trust.index_identifier` with culling on or off: with it, the forward keeps its
stage maps for the map (the index job drops them once the photo is scored).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from birdid_app.core.insight.trust import evidence_box, index_identifier
from birdid_app.core.photos.sharpness import SHARPNESS_DRAFT, Region, sharpness

if TYPE_CHECKING:
    from PIL import Image

    from birdid_app.core.model.inference import Classifier, Identification

LAYER_NORM_EPS = 1e-6  # as the model's own (core/model/hiera.py)


def cam_weights(classifier: Classifier) -> np.ndarray:
    """The classifier's weights [classes, C] with the final LayerNorm's scale folded in, to read
    LayerNorm-normalised cells of the last stage map."""
    weight, _ = classifier.head_weights()
    features = getattr(classifier.model, "features", None)
    norm = features[1] if features is not None and len(features) > 1 else None
    scale = getattr(norm, "weight", None)
    if scale is None:
        return weight
    return weight * scale.detach().float().cpu().numpy()[None, :]


def class_activation_map(stage_map: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    """The activation map [h, w] in 0..1 of one class (`class_weights` [C]) over the last stage
    map [C, h, w]: each cell normalised over its channels, read through the class's weights,
    scaled from the lowest cell (0) to the highest (1); all zeros when every cell is the same."""
    channels, height, width = stage_map.shape
    cells = stage_map.reshape(channels, height * width).astype(np.float32)  # [C, h*w]
    cells = (cells - cells.mean(axis=0)) / np.sqrt(cells.var(axis=0) + LAYER_NORM_EPS)
    cam = class_weights.astype(np.float32) @ cells  # [h*w]
    span = float(cam.max() - cam.min())
    if not np.isfinite(span) or span <= 0:
        return np.zeros((height, width), dtype=np.float32)
    return ((cam - cam.min()) / span).reshape(height, width)


def cull_box(classifier: Classifier) -> Callable[[Identification, tuple[int, int]], Region | None]:
    """(identification, image size) -> the box of the evidence for its answer in an image of that
    size, from its last stage map; None (score the centre) without stage maps, or when the box
    would cover most of the photo."""
    weights = cam_weights(classifier)

    def box(identification: Identification, size: tuple[int, int]) -> Region | None:
        if not identification.stage_maps:
            return None
        cam = class_activation_map(identification.stage_maps[-1], weights[int(np.argmax(identification.probabilities))])
        # No margin: the zoom grows its box to show the model some context, but sharpness is
        # wanted on the bird itself, not on the out-of-focus background around it.
        return evidence_box(cam, size, margin=0.0).box

    return box


def index_steps(classifier: Classifier, *, zoom: bool, culling: bool):
    """(identify, decode_size, prepare, bird_box) for an IndexJob: trust.index_identifier's steps,
    and with `culling` the forward keeps the whole photo's stage maps, which `bird_box` reads
    (with `zoom`, the answer is still the one the model is surer of, and the box comes from the
    whole photo's map); bird_box is None without culling."""
    identify, decode_size, prepare = index_identifier(classifier, zoom=zoom, keep_stage_maps=culling)
    return identify, decode_size, prepare, cull_box(classifier) if culling else None


def score_photos(classifier: Classifier, paths: Sequence[Path],
                 on_error: Callable[[str], None]) -> dict[Path, float]:
    """Each photo's sharpness on the bird, as indexing with culling on scores it: for photos
    indexed before culling (`birdid cull` scores those first). A photo that cannot be read is
    `on_error`'s sentence and left out."""
    from birdid_app.core.errors import PhotoError
    from birdid_app.core.model.preprocess import squash_to_input_size
    from birdid_app.core.photos.photo import decode_photo

    box_of = cull_box(classifier)
    scores: dict[Path, float] = {}
    for path in paths:
        try:
            image: Image.Image = decode_photo(path, draft_size=SHARPNESS_DRAFT)
        except PhotoError as error:
            on_error(str(error))
            continue
        (identification,) = classifier.identify_images([squash_to_input_size(image, classifier.image_size)],
                                                       [str(path)], keep_stage_maps=True)
        scores[path] = sharpness(image, box_of(identification, image.size))
    return scores

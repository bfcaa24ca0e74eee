"""Analyzer: reads a scene back from pixels with no learned model.

1. Every pixel snaps to the nearest named colour (Euclidean RGB). The most frequent
   background colour is the background.
2. Per colour, 8-connected components are labelled and their holes filled (the rim of
   an outlined or pixelated object is unbroken, so its silhouette is one component); for
   object colours a 3x3 closing first bridges one-pixel breaks that noise cuts in thin
   outline strokes (objects of one colour are always at least 4 px apart).
3. Each component is matched against the world's canonical masks (object shapes at both
   sizes, sun, moon, star, heart, confetti/snowflake speck, rain streak) by intersection
   over union, centred on the component's bounding box and tried at +-1 px offsets; the
   colour restricts which masks are candidates (only white can be a moon or a flake).
4. Object position is the grid cell of the bounding-box centre; style comes from the
   pixels missing inside the silhouette: none means plain, missing pixels on one
   image-wide lattice of lines mean pixelated, any other hollow means outline.
5. Global marks are counted: snow / rain / a decoration is present when at least
   `MIN_MARKS` of its marks are found, so a few lost or spurious specks change nothing.

Tolerance to imperfect images (measured in docs/benchmarks.md): colour snapping absorbs
per-channel noise well below half the smallest distance between two palette colours
(72 RGB units, navy vs black); components smaller than a speck are ignored; matching by
IoU with a 0.5 floor and offsets tolerates shifts and ragged edges; when two objects land
in one cell (for example a blurred fringe), the larger one wins.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from PIL import Image
from scipy import ndimage

from seer.world import geometry as g
from seer.world.render import CONFETTI_COLORS, HEART_COLOR, STAR_COLOR
from seer.world.scene import (
    BACKGROUNDS,
    COLORS,
    OBJECT_COLORS,
    RAIN_RGB,
    SHAPES,
    SIZES,
    Obj,
    Scene,
)

PALETTE_NAMES = (*COLORS, "rain")
PALETTE = np.array([*COLORS.values(), RAIN_RGB], dtype=np.float32)
MIN_MARKS = 3
MIN_IOU = 0.5
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclasses.dataclass
class Component:
    kind: str  # object | sun | moon | star | heart | confetti | flake | streak
    color: str
    iou: float
    area: int
    center: tuple[float, float]
    shape: str | None = None
    size: str | None = None
    style: str | None = None


@dataclasses.dataclass
class Analysis:
    scene: Scene
    components: list[Component]
    counts: dict[str, int]


def to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
    return image


def snap(image: np.ndarray) -> np.ndarray:
    """H x W array of palette indices (nearest named colour)."""
    pixels = image.reshape(-1, 3).astype(np.float32)
    dist = ((pixels[:, None, :] - PALETTE[None, :, :]) ** 2).sum(-1)
    return dist.argmin(1).reshape(image.shape[:2])


@functools.lru_cache(maxsize=8)
def _templates(size: int) -> dict[str, list[tuple[str, str | None, np.ndarray]]]:
    """Candidate masks per kind: (kind, detail, mask)."""
    objects = [("object", f"{shape}/{s}", g.solid_mask(shape, g.object_diameter(s, size)))
               for shape in SHAPES for s in SIZES]
    md, sm, sp = g.mark_diameter(size), g.small_mark(size), g.speck(size)
    return {
        "object": objects,
        "sun": [("sun", None, g.solid_mask("sun", md))],
        "moon": [("moon", None, g.solid_mask("moon", md))],
        "star": [("star", None, g.solid_mask("star", sm))],
        "heart": [("heart", None, g.solid_mask("heart", sm))],
        "speck": [("speck", None, g.solid_mask("speck", sp))],
        "streak": [("streak", None, g.solid_mask("streak", sm))],
    }


def _candidates(color: str) -> list[str]:
    kinds = []
    if color in OBJECT_COLORS:
        kinds.append("object")
    if color in CONFETTI_COLORS or color == "white":
        kinds.append("speck")
    if color == STAR_COLOR:
        kinds += ["star", "sun"]
    if color == HEART_COLOR:
        kinds.append("heart")
    if color == "white":
        kinds.append("moon")
    if color == "rain":
        kinds.append("streak")
    return kinds


def _iou(mask: np.ndarray, template: np.ndarray) -> float:
    """Best IoU of two masks centred on each other, over +-1 px offsets."""
    h, w = mask.shape
    th, tw = template.shape
    H, W = max(h, th) + 4, max(w, tw) + 4
    a = np.zeros((H, W), dtype=bool)
    ay, ax = (H - h) // 2, (W - w) // 2
    a[ay:ay + h, ax:ax + w] = mask
    area_a = int(mask.sum())
    area_t = int(template.sum())
    best = 0.0
    by, bx = (H - th) // 2, (W - tw) // 2
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            y0, x0 = by + dy, bx + dx
            inter = int(a[y0:y0 + th, x0:x0 + tw][template].sum())
            best = max(best, inter / (area_a + area_t - inter))
    return best


def analyze(image: Image.Image | np.ndarray) -> Analysis:
    """Read the scene in an image rendered by (or imitating) the shapes-world renderer."""
    array = to_array(image)
    size = array.shape[0]
    labels = snap(array)
    counts_per_color = np.bincount(labels.ravel(), minlength=len(PALETTE_NAMES))
    bg_candidates = [PALETTE_NAMES.index(b) for b in BACKGROUNDS]
    background = PALETTE_NAMES[max(bg_candidates, key=lambda i: counts_per_color[i])]
    templates = _templates(size)
    speck_area = g.speck(size) ** 2
    components: list[Component] = []

    for index in np.flatnonzero(counts_per_color):
        color = PALETTE_NAMES[index]
        kinds = _candidates(color)
        if color == background or not kinds:
            continue
        mask = labels == index
        grouped = mask
        if color in OBJECT_COLORS:
            # Bridges one-pixel breaks (noise) in thin outline strokes; objects are >= 4 px apart.
            grouped = mask | ndimage.binary_closing(np.pad(mask, 2), structure=_EIGHT)[2:-2, 2:-2]
        comp_labels, _ = ndimage.label(grouped, structure=_EIGHT)
        # Largest first, so tiles enclosed by a pixelated object's rim join that object.
        pieces = []
        for k, sl in enumerate(ndimage.find_objects(comp_labels), start=1):
            comp = comp_labels[sl] == k
            pieces.append((sl, comp, ndimage.binary_fill_holes(comp)))
        pieces.sort(key=lambda p: -int(p[2].sum()))
        covered = np.zeros_like(mask)
        for sl, comp, filled in pieces:
            if covered[sl][comp].all():
                continue
            covered[sl] |= filled
            area = int(filled.sum())
            if area < max(1, speck_area // 2):
                continue
            best = _classify(filled, kinds, templates)
            if best is None:
                continue
            kind, detail, iou = best
            cy = (sl[0].start + sl[0].stop - 1) / 2
            cx = (sl[1].start + sl[1].stop - 1) / 2
            found = Component(kind, color, iou, int(comp.sum()), (cx, cy))
            if kind == "object":
                found.shape, found.size = detail.split("/")
                found.style = _style(filled & ~mask[sl], area, sl, size)
            elif kind == "speck":
                found.kind = "flake" if color == "white" else "confetti"
            components.append(found)
    return _assemble(components, background, size)


def _style(holes: np.ndarray, area: int, where: tuple[slice, slice], size: int) -> str:
    """plain: (almost) no pixels missing inside the silhouette; pixelated: the missing
    pixels lie on one image-wide lattice of lines; outline: a hollow inside."""
    n_holes = int(holes.sum())
    if n_holes < max(4, 0.05 * area):
        return "plain"
    ys, xs = np.nonzero(holes)
    ys, xs = ys + where[0].start, xs + where[1].start
    pitch = g.tile_pitch(size)
    on_lattice = max(
        float(np.mean(((ys - py) % pitch == 0) | ((xs - px) % pitch == 0)))
        for py in range(pitch) for px in range(pitch)
    )
    if on_lattice > 0.8:
        return "pixelated"
    # Scattered missing pixels (noise) are not a hollow.
    return "outline" if n_holes >= 0.2 * area else "plain"


def _classify(filled: np.ndarray, kinds: list[str], templates) -> tuple[str, str | None, float] | None:
    area = int(filled.sum())
    best: tuple[str, str | None, float] | None = None
    for kind in kinds:
        for name, detail, template in templates[kind]:
            t_area = int(template.sum())
            if not 0.4 <= area / t_area <= 2.5:
                continue
            iou = _iou(filled, template)
            if iou >= MIN_IOU and (best is None or iou > best[2]):
                best = (name, detail, iou)
    return best


def _assemble(components: list[Component], background: str, size: int) -> Analysis:
    by_cell: dict[str, Component] = {}
    for c in components:
        if c.kind != "object":
            continue
        cell = g.nearest_position(*c.center, size)
        if cell not in by_cell or c.area > by_cell[cell].area:
            by_cell[cell] = c
    objects = tuple(Obj(c.shape, c.color, c.size, cell) for cell, c in by_cell.items())
    styles = [c.style for c in by_cell.values()]
    style = (max(("plain", "outline", "pixelated"), key=lambda s: (styles.count(s), s != "plain"))
             if styles else "plain")  # no object, no style to read

    counts = {k: sum(c.kind == k for c in components)
              for k in ("sun", "moon", "flake", "streak", "star", "heart", "confetti")}
    sky_marks = [c for c in components if c.kind in ("sun", "moon")]
    sky = max(sky_marks, key=lambda c: c.iou).kind if sky_marks else "none"
    weather = _most("clear", {"snow": counts["flake"], "rain": counts["streak"]})
    decoration = _most("none", {"stars": counts["star"], "hearts": counts["heart"],
                                "confetti": counts["confetti"]})
    scene = Scene(objects, background, sky=sky, weather=weather, decoration=decoration,
                  style=style)
    return Analysis(scene, components, counts)


def _most(default: str, counts: dict[str, int]) -> str:
    name, n = max(counts.items(), key=lambda kv: kv[1])
    return name if n >= MIN_MARKS else default


def analyze_scene(image: Image.Image | np.ndarray) -> Scene:
    return analyze(image).scene

"""Layout and shape masks shared by the renderer and the analyzer.

Every length is a fraction of the image side `S`, so the world renders at any size; the
figures in docs/benchmarks.md are measured at the default, 64 px. Masks are drawn with
PIL without anti-aliasing so that a scene has exactly one rendering.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw

from seer.world.scene import POSITIONS

DEFAULT_SIZE = 64
# Order in which free grid cells receive the sky mark (sun or moon).
SKY_CELL_ORDER = ("top right", "top left", "top", "right", "left", "center",
                  "bottom right", "bottom left", "bottom")

# A 5x5 heart at 64 px; scaled by nearest neighbour at other sizes.
_HEART = np.array([
    [0, 1, 0, 1, 0],
    [1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1],
    [0, 1, 1, 1, 0],
    [0, 0, 1, 0, 0],
], dtype=bool)


def cell_center(position: str, size: int) -> tuple[float, float]:
    """(x, y) centre of a grid cell, in pixels."""
    index = POSITIONS.index(position)
    row, col = divmod(index, 3)
    cell = size / 3
    return (col + 0.5) * cell, (row + 0.5) * cell


def nearest_position(x: float, y: float, size: int) -> str:
    col = min(2, max(0, int(x // (size / 3))))
    row = min(2, max(0, int(y // (size / 3))))
    return POSITIONS[row * 3 + col]


def grid_cells(side: int) -> list[str]:
    """The grid position each cell of a side x side raster (row-major) falls in, by its centre:
    which object an image code of that raster can depict."""
    return [nearest_position((c + 0.5) / side, (r + 0.5) / side, 1) for r in range(side) for c in range(side)]


def object_diameter(obj_size: str, size: int) -> int:
    return max(5, round((0.27 if obj_size == "large" else 0.19) * size))


def halo(size: int) -> int:
    """Width of the background-coloured ring drawn around every object and mark."""
    return max(1, size // 64)


def outline_stroke(size: int) -> int:
    return max(1, size // 48)


def tile_pitch(size: int) -> int:
    """Pixelated objects are cut into square tiles by background lines at this pitch."""
    return max(3, size // 16)


def mark_diameter(size: int) -> int:
    """Sun and moon."""
    return max(4, round(0.11 * size))


def small_mark(size: int) -> int:
    """Stars and hearts."""
    return max(3, round(size * 5 / 64))


def speck(size: int) -> int:
    """Confetti pieces and snowflakes."""
    return max(1, round(size * 2 / 64))


@functools.cache
def solid_mask(shape: str, d: int) -> np.ndarray:
    """Filled d x d mask of a shape; read-only (cached)."""
    img = Image.new("1", (d, d), 0)
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse((0, 0, d - 1, d - 1), fill=1)
    elif shape == "square":
        draw.rectangle((0, 0, d - 1, d - 1), fill=1)
    elif shape == "triangle":
        draw.polygon([((d - 1) / 2, 0), (d - 1, d - 1), (0, d - 1)], fill=1)
    elif shape == "cross":
        arm = max(1, round(d / 3))
        lo = (d - arm) // 2
        draw.rectangle((lo, 0, lo + arm - 1, d - 1), fill=1)
        draw.rectangle((0, lo, d - 1, lo + arm - 1), fill=1)
    elif shape == "sun":
        draw.ellipse((0, 0, d - 1, d - 1), fill=1)
    elif shape == "moon":
        draw.ellipse((0, 0, d - 1, d - 1), fill=1)
        bite = max(2, round(d * 0.45))
        draw.ellipse((bite, -bite // 2, bite + d - 1, d - 1 - bite // 2), fill=0)
    elif shape == "star":
        mid = d // 2
        draw.line((mid, 0, mid, d - 1), fill=1)
        draw.line((0, mid, d - 1, mid), fill=1)
    elif shape == "heart":
        return _freeze(np.array(Image.fromarray(_HEART).resize((d, d), Image.NEAREST)))
    elif shape == "speck":
        draw.rectangle((0, 0, d - 1, d - 1), fill=1)
    elif shape == "streak":
        draw.line((0, 0, d - 1, d - 1), fill=1)
    else:
        raise ValueError(f"no mask for shape '{shape}'")
    return _freeze(np.array(img, dtype=bool))


@functools.cache
def outline_mask(shape: str, d: int, stroke: int) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    solid = solid_mask(shape, d)
    padded = np.pad(solid, 1)
    inner = binary_erosion(padded, iterations=stroke)[1:-1, 1:-1]
    return _freeze(solid & ~inner)


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels of `mask` whose eight neighbours are all in `mask`."""
    from scipy.ndimage import binary_erosion

    return binary_erosion(np.pad(mask, 1), structure=np.ones((3, 3), bool))[1:-1, 1:-1]


def _freeze(mask: np.ndarray) -> np.ndarray:
    mask.setflags(write=False)
    return mask


def placed(mask: np.ndarray, cx: float, cy: float) -> tuple[int, int]:
    """Top-left corner that centres `mask` on (cx, cy)."""
    h, w = mask.shape
    return int(round(cx - w / 2)), int(round(cy - h / 2))


def paste(canvas: np.ndarray, mask: np.ndarray, x0: int, y0: int, value) -> None:
    """canvas[mask] = value, with the mask clipped to the canvas."""
    h, w = mask.shape
    H, W = canvas.shape[:2]
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(W, x0 + w), min(H, y0 + h)
    if xs >= xe or ys >= ye:
        return
    sub = mask[ys - y0:ye - y0, xs - x0:xe - x0]
    canvas[ys:ye, xs:xe][sub] = value


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Mask grown by r pixels on every side (shape grows by 2r)."""
    from scipy.ndimage import binary_dilation

    return binary_dilation(np.pad(mask, r), structure=np.ones((3, 3), bool), iterations=r)


def decoration_offsets(size: int) -> list[tuple[float, float]]:
    """Where decorations sit inside a free cell, relative to its centre."""
    o = 0.1 * size
    return [(-o, -o), (o, -o), (-o, o), (o, o)]


def weather_lattice(size: int) -> list[tuple[float, float]]:
    """Snowflake / raindrop centres: a staggered lattice on the cell boundaries."""
    pitch = size / 6
    points = []
    for row in range(7):
        shift = 0.0 if row % 2 == 0 else pitch / 2
        for col in range(7):
            x, y = col * pitch + shift, row * pitch
            if 0 <= x < size and 0 <= y < size:
                points.append((x, y))
    return points

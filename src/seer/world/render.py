"""Deterministic renderer: a Scene becomes an RGB image.

Drawing order: background, weather (behind everything, so flakes never cut an object),
decorations in free cells, the sky mark in the first free cell of SKY_CELL_ORDER, then
the objects. Each object and mark first clears a one-pixel halo in the background
colour, so no two things ever touch and the analyzer can separate them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from seer.world import geometry as g
from seer.world.scene import COLORS, OBJECT_COLORS, RAIN_RGB, Scene

CONFETTI_COLORS = ("red", "yellow", "blue", "green", "pink", "orange")
STAR_COLOR = "yellow"
HEART_COLOR = "pink"


def free_cells(scene: Scene) -> list[str]:
    taken = {o.position for o in scene.objects}
    return [p for p in g.SKY_CELL_ORDER if p not in taken]


def sky_cell(scene: Scene) -> str | None:
    return free_cells(scene)[0] if scene.sky != "none" else None


def render_array(scene: Scene, size: int = g.DEFAULT_SIZE) -> np.ndarray:
    """H x W x 3 uint8 image of the scene."""
    bg = np.array(COLORS[scene.background], dtype=np.uint8)
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:] = bg
    ring = g.halo(size)

    def stamp(mask: np.ndarray, cx: float, cy: float, rgb) -> None:
        x0, y0 = g.placed(mask, cx, cy)
        g.paste(canvas, g.dilate(mask, ring), x0 - ring, y0 - ring, bg)
        g.paste(canvas, mask, x0, y0, np.array(rgb, dtype=np.uint8))

    if scene.weather != "clear":
        if scene.weather == "snow":
            mask, rgb = g.solid_mask("speck", g.speck(size)), COLORS["white"]
        else:
            mask, rgb = g.solid_mask("streak", g.small_mark(size)), RAIN_RGB
        for x, y in g.weather_lattice(size):
            x0, y0 = g.placed(mask, x, y)
            g.paste(canvas, mask, x0, y0, np.array(rgb, dtype=np.uint8))

    cells = free_cells(scene)
    sky_at = cells[0] if scene.sky != "none" else None
    if scene.decoration != "none":
        k = 0
        for cell in cells:
            if cell == sky_at:
                continue
            cx, cy = g.cell_center(cell, size)
            for dx, dy in g.decoration_offsets(size):
                if scene.decoration == "confetti":
                    mask = g.solid_mask("speck", g.speck(size))
                    rgb = COLORS[CONFETTI_COLORS[k % len(CONFETTI_COLORS)]]
                elif scene.decoration == "stars":
                    mask, rgb = g.solid_mask("star", g.small_mark(size)), COLORS[STAR_COLOR]
                else:
                    mask, rgb = g.solid_mask("heart", g.small_mark(size)), COLORS[HEART_COLOR]
                stamp(mask, cx + dx, cy + dy, rgb)
                k += 1

    if sky_at is not None:
        cx, cy = g.cell_center(sky_at, size)
        d = g.mark_diameter(size)
        rgb = COLORS["yellow"] if scene.sky == "sun" else COLORS["white"]
        stamp(g.solid_mask(scene.sky, d), cx, cy, rgb)

    for obj in scene.objects:
        assert obj.color in OBJECT_COLORS
        d = g.object_diameter(obj.size, size)
        cx, cy = g.cell_center(obj.position, size)
        solid = g.solid_mask(obj.shape, d)
        x0, y0 = g.placed(solid, cx, cy)
        g.paste(canvas, g.dilate(solid, ring), x0 - ring, y0 - ring, bg)
        if scene.style == "outline":
            mask = g.outline_mask(obj.shape, d, g.outline_stroke(size))
        elif scene.style == "pixelated":
            mask = solid & ~(_tile_gaps(d, x0, y0, g.tile_pitch(size)) & g.interior(solid))
        else:
            mask = solid
        g.paste(canvas, mask, x0, y0, np.array(COLORS[obj.color], dtype=np.uint8))
    return canvas


def _tile_gaps(d: int, x0: int, y0: int, pitch: int) -> np.ndarray:
    """One-pixel lines on the image-wide tile grid, cut out of a pixelated object's inside
    (never its rim, so the silhouette and the shape stay exact)."""
    ys = (np.arange(d) + y0) % pitch == 0
    xs = (np.arange(d) + x0) % pitch == 0
    return ys[:, None] | xs[None, :]


def render(scene: Scene, size: int = g.DEFAULT_SIZE) -> Image.Image:
    return Image.fromarray(render_array(scene, size), "RGB")


def captioned_grid(images: list[Image.Image], captions: list[str], cols: int = 4,
                   scale: int = 3, caption_lines: int = 9) -> Image.Image:
    """Images enlarged `scale` times (nearest neighbour), each with wrapped text under it."""
    import textwrap

    from PIL import ImageDraw, ImageFont

    if not images:
        raise ValueError("no images to lay out")
    font = ImageFont.load_default()
    w, h = images[0].width * scale, images[0].height * scale
    chars = max(8, w // 6)
    line_h = 11
    cell_h = h + 4 + caption_lines * line_h
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (w + 8) + 8, rows * (cell_h + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (image, caption) in enumerate(zip(images, captions, strict=True)):
        x = 8 + (k % cols) * (w + 8)
        y = 8 + (k // cols) * (cell_h + 8)
        sheet.paste(image.resize((w, h), Image.NEAREST), (x, y))
        lines = textwrap.wrap(caption, chars)[:caption_lines]
        for j, line in enumerate(lines):
            draw.text((x, y + h + 4 + j * line_h), line, fill=(0, 0, 0), font=font)
    return sheet

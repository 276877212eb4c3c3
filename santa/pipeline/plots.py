"""The report's histograms (plots/<step>.png), drawn with Pillow.

matplotlib draws the same picture but costs a pipeline run ~1 s of CPU (its import alone ~0.7 s),
as much as deduplicating 15 MB: the plots are a few filled step outlines, axes, ticks and text,
which Pillow (installed with matplotlib, imported in ~0.04 s) draws in milliseconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

# matplotlib's default colour cycle, so the plots look as they always have.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
SIZE = (700, 400)
# Plot area: left, top, right, bottom.
BOX = (72, 36, 682, 340)


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values covering [lo, hi], about ``n`` of them (1, 2, 2.5 or 5 x 10^k apart)."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + k * step, 12) for k in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:g}"


def histogram(
    path: Path,
    per_lang: dict[str, np.ndarray],
    *,
    title: str,
    xlabel: str,
    ylabel: str = "files",
    lines: tuple[float, ...] = (),
    bins: int = 50,
) -> None:
    """Overlaid histograms of each language's values (shared bins), dashed vertical ``lines``."""
    from PIL import Image, ImageDraw, ImageFont

    lo = min(float(v.min()) for v in per_lang.values())
    hi = max(float(v.max()) for v in per_lang.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    counts = {lang: np.histogram(v, bins=edges)[0] for lang, v in sorted(per_lang.items())}
    top = max(1, max(int(c.max()) for c in counts.values()))
    x0, y0, x1, y1 = BOX
    xmin, xmax = edges[0] - 0.05 * (edges[-1] - edges[0]), edges[-1] + 0.05 * (edges[-1] - edges[0])
    ymax = top * 1.05

    def px(x: float) -> float:
        return x0 + (x - xmin) / (xmax - xmin) * (x1 - x0)

    def py(y: float) -> float:
        return y1 - y / ymax * (y1 - y0)

    img = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(img, "RGBA")
    font = ImageFont.load_default(size=12)
    big = ImageFont.load_default(size=14)
    for k, (_lang, c) in enumerate(counts.items()):
        colour = COLOURS[k % len(COLOURS)]
        rgba = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5)) + (128,)
        for i in np.flatnonzero(c):
            draw.rectangle((px(edges[i]), py(float(c[i])), px(edges[i + 1]), py(0)), fill=rgba)
    for x in lines:
        for y in range(y0, y1, 8):
            draw.line((px(x), y, px(x), min(y + 4, y1)), fill="black")
    draw.rectangle((x0, y0, x1, y1), outline="black")
    for t in nice_ticks(xmin, xmax):
        draw.line((px(t), y1, px(t), y1 + 4), fill="black")
        draw.text((px(t), y1 + 6), _label(t), fill="black", font=font, anchor="mt")
    for t in nice_ticks(0, ymax):
        draw.line((x0 - 4, py(t), x0, py(t)), fill="black")
        draw.text((x0 - 6, py(t)), _label(t), fill="black", font=font, anchor="rm")
    draw.text(((x0 + x1) / 2, SIZE[1] - 22), xlabel, fill="black", font=font, anchor="mm")
    draw.text(((x0 + x1) / 2, y0 / 2), title, fill="black", font=big, anchor="mm")
    # The y label, turned a quarter.
    w = int(draw.textlength(ylabel, font=font)) + 4
    layer = Image.new("RGBA", (w, 16), (255, 255, 255, 0))
    ImageDraw.Draw(layer).text((w / 2, 8), ylabel, fill="black", font=font, anchor="mm")
    rotated = layer.rotate(90, expand=True)
    img.paste(rotated, (14, int((y0 + y1) / 2 - w / 2)), rotated)
    # Legend, top right.
    names = [f"{lang} ({len(per_lang[lang]):,})" for lang in counts]
    width = max(int(draw.textlength(n, font=font)) for n in names) + 34
    lx, ly = x1 - width - 8, y0 + 8
    draw.rectangle((lx, ly, x1 - 8, ly + 8 + 18 * len(names)), fill=(255, 255, 255, 210), outline=(190, 190, 190))
    for k, name in enumerate(names):
        colour = COLOURS[k % len(COLOURS)]
        rgba = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5)) + (128,)
        y = ly + 6 + 18 * k
        draw.rectangle((lx + 6, y + 2, lx + 22, y + 12), fill=rgba)
        draw.text((lx + 28, y + 7), name, fill="black", font=font, anchor="lm")
    img.save(path, optimize=False)

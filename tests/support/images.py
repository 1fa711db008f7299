"""What the picture tests check of a file: a valid PNG, SVG or PDF of the expected size, not blank."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 900, 600  # pixels of a PNG (9 x 6 inches at 100 dpi): rayscript.pictures


def check_png(path: Path, width: int = WIDTH, height: int = HEIGHT) -> None:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    w, h = struct.unpack(">II", raw[16:24])
    assert (w, h) == (width, height), (w, h)
    from matplotlib.image import imread

    pixels = imread(str(path))
    assert pixels.shape[:2] == (height, width)
    flat = pixels.reshape(-1, pixels.shape[2])
    # the distinct colours: each pixel's channels packed into one integer (np.unique(axis=0) sorts
    # rows as records, about 2 s a picture)
    channels = np.round(flat * 255).astype(np.uint32)
    packed = np.zeros(len(channels), np.uint32)
    for j in range(channels.shape[1]):
        packed |= channels[:, j] << (8 * j)
    colours = np.unique(packed)
    assert len(colours) > 20, f"{path} looks blank ({len(colours)} colours)"
    background = (flat == flat[0]).all(axis=1).mean()
    assert background < 0.97, f"{path} is {background:.1%} one colour"


def check_svg(path: Path) -> None:
    text = path.read_text()
    assert "<svg" in text and "</svg>" in text
    m = re.search(r'<svg[^>]*width="([\d.]+)pt"[^>]*height="([\d.]+)pt"', text)
    assert m and (float(m.group(1)), float(m.group(2))) == (648.0, 432.0), m and m.groups()
    assert text.count("<path") > 20, "an SVG with almost nothing drawn"


def check_pdf(path: Path) -> None:
    raw = path.read_bytes()
    assert raw.startswith(b"%PDF-") and b"%%EOF" in raw[-64:]
    assert re.search(rb"/MediaBox \[ ?0 0 648 432 ?\]", raw), "not a 9 x 6 inch page"
    assert len(raw) > 3000


def check_picture(path: Path) -> None:
    {".png": check_png, ".svg": check_svg, ".pdf": check_pdf}[path.suffix](path)

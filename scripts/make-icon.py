#!/usr/bin/env python3
"""Draws src-tauri/icons/icon.png (an RGBA PNG that Tauri's generate_context! requires).

Standard library only, so it runs anywhere: a rounded square in an indigo-to-teal gradient with
a white lens and a dark pupil. Run it again only if the icon should change; the PNG is committed.
"""
import math
import pathlib
import struct
import zlib

SIZE = 256


def lerp(a, b, t):
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


def coverage(d):
    """Anti-aliased inside-ness for a signed distance d (negative = inside)."""
    return max(0.0, min(1.0, 0.5 - d))


def pixel(x, y):
    cx = cy = SIZE / 2
    px, py = x + 0.5, y + 0.5
    # Rounded square background.
    half, radius = SIZE / 2 - 6, 56
    qx, qy = abs(px - cx) - (half - radius), abs(py - cy) - (half - radius)
    d_box = math.hypot(max(qx, 0), max(qy, 0)) + min(max(qx, qy), 0) - radius
    bg_a = coverage(d_box)
    if bg_a == 0:
        return (0, 0, 0, 0)
    t = (px + py) / (2 * SIZE)
    rgb = lerp((79, 70, 229), (13, 148, 136), t)
    r = math.hypot(px - cx, py - cy)
    # Lens: a white disc with a dark pupil and a small highlight.
    rgb = lerp(rgb, (255, 255, 255), coverage(r - 78))
    rgb = lerp(rgb, (30, 27, 75), coverage(r - 38))
    rgb = lerp(rgb, (255, 255, 255), coverage(math.hypot(px - cx - 14, py - cy + 14) - 10))
    return (*rgb, round(255 * bg_a))


def png(width, height, rows):
    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\0" + bytes(v for p in row for v in p) for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    out = pathlib.Path(__file__).resolve().parent.parent / "src-tauri" / "icons" / "icon.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [[pixel(x, y) for x in range(SIZE)] for y in range(SIZE)]
    out.write_bytes(png(SIZE, SIZE, rows))
    print(f"wrote {out}")

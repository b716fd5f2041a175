import { describe, expect, it } from 'vitest';
import { FITTED, boxRect, colourFor, fitRect, imageRect, pointAt, zoomAt } from './geometry';

describe('fitRect', () => {
  it.each([
    // viewport, image, expected: letterboxed left/right, top/bottom, or exact
    [{ width: 400, height: 150 }, { width: 128, height: 96 }, { x: 100, y: 0, width: 200, height: 150 }],
    [{ width: 256, height: 400 }, { width: 128, height: 96 }, { x: 0, y: 104, width: 256, height: 192 }],
    [{ width: 256, height: 192 }, { width: 128, height: 96 }, { x: 0, y: 0, width: 256, height: 192 }],
  ])('%j fits %j at %j', (viewport, image, expected) => {
    expect(fitRect(viewport, image)).toStrictEqual(expected);
  });

  it('refuses sizes it cannot draw', () => {
    expect(fitRect({ width: 0, height: 10 }, { width: 1, height: 1 })).toBeNull();
    expect(fitRect({ width: 10, height: 10 }, { width: NaN, height: 1 })).toBeNull();
  });
});

describe('boxRect', () => {
  it('maps 0–1000 to the displayed image, letterbox offset included', () => {
    const image = imageRect({ width: 400, height: 150 }, { width: 128, height: 96 }, FITTED)!;
    const r = boxRect({ x1: 250, y1: 312, x2: 484, y2: 625 }, image);
    // 200×150 image at x=100: x = 100 + 0.25·200, y = 0.312·150, w = 0.234·200, h = 0.313·150
    expect([r.x, r.y, r.width, r.height].map((v) => Math.round(v * 1e6) / 1e6)).toStrictEqual([150, 46.8, 46.8, 46.95]);
    expect(pointAt({ x: 500, y: 1000 }, image)).toStrictEqual({ x: 200, y: 150 });
  });
});

describe('zoom and pan', () => {
  const viewport = { width: 400, height: 300 };
  const image = { width: 800, height: 600 };

  it('zooms about the viewport centre and pans in viewport pixels', () => {
    expect(imageRect(viewport, image, { zoom: 2, panX: 0, panY: 0 })).toStrictEqual({ x: -200, y: -150, width: 800, height: 600 });
    expect(imageRect(viewport, image, { zoom: 2, panX: 30, panY: -10 })).toStrictEqual({ x: -170, y: -160, width: 800, height: 600 });
  });

  it('keeps the image point under the cursor fixed', () => {
    const cursor = { x: 100, y: 75 };
    const view = zoomAt(viewport, image, FITTED, 2, cursor);
    const rect = imageRect(viewport, image, view)!;
    // The cursor was at 25%/25% of the image before; it still is.
    expect((cursor.x - rect.x) / rect.width).toBeCloseTo(0.25, 10);
    expect((cursor.y - rect.y) / rect.height).toBeCloseTo(0.25, 10);
    expect(view.zoom).toBe(2);
    // A box drawn at that point stays there.
    const box = boxRect({ x1: 250, y1: 250, x2: 500, y2: 500 }, rect);
    expect(box.x).toBeCloseTo(100, 10);
    expect(box.width).toBeCloseTo(200, 10);
  });

  it('clamps the zoom and returns to fitted at 1', () => {
    expect(zoomAt(viewport, image, { zoom: 7, panX: 0, panY: 0 }, 4, { x: 0, y: 0 }).zoom).toBe(8);
    expect(zoomAt(viewport, image, { zoom: 1.5, panX: 40, panY: 9 }, 0.1, { x: 0, y: 0 })).toStrictEqual(FITTED);
  });
});

describe('colourFor', () => {
  it('gives neighbours different hues', () => {
    const hues = [0, 1, 2, 3, 4].map(colourFor);
    expect(new Set(hues).size).toBe(5);
  });
});

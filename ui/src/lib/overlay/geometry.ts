// Where an image and its grounding sit on screen. The image is fitted into a viewport (contain:
// letterboxed on one axis), then zoomed about the viewport centre and panned. Boxes are placed from
// the same rectangle, so image and boxes can never drift apart. Qwen3-VL coordinates are 0–1000 of
// the image (spec §9), so the DISPLAYED image rectangle is all a box needs.
import { COORDINATE_MAX } from '../parse/grounding';

export interface Size {
  width: number;
  height: number;
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Zoom factor (1 = fitted) and pan offset in viewport pixels. */
export interface View {
  zoom: number;
  panX: number;
  panY: number;
}

export const FITTED: View = { zoom: 1, panX: 0, panY: 0 };
export const MIN_ZOOM = 1;
export const MAX_ZOOM = 8;

/** The image fitted inside the viewport, centred; null for a size that cannot be drawn. */
export function fitRect(viewport: Size, image: Size): Rect | null {
  const ok = (s: Size) => Number.isFinite(s.width) && Number.isFinite(s.height) && s.width > 0 && s.height > 0;
  if (!ok(viewport) || !ok(image)) return null;
  const scale = Math.min(viewport.width / image.width, viewport.height / image.height);
  const width = image.width * scale;
  const height = image.height * scale;
  return { x: (viewport.width - width) / 2, y: (viewport.height - height) / 2, width, height };
}

/** The fitted rectangle after zoom (about the viewport centre) and pan. */
export function imageRect(viewport: Size, image: Size, view: View): Rect | null {
  const fit = fitRect(viewport, image);
  if (fit === null) return null;
  const cx = viewport.width / 2;
  const cy = viewport.height / 2;
  return {
    x: cx + (fit.x - cx) * view.zoom + view.panX,
    y: cy + (fit.y - cy) * view.zoom + view.panY,
    width: fit.width * view.zoom,
    height: fit.height * view.zoom,
  };
}

/** A 0–1000 box in viewport pixels, given where the image is drawn. */
export function boxRect(box: { x1: number; y1: number; x2: number; y2: number }, image: Rect): Rect {
  const sx = image.width / COORDINATE_MAX;
  const sy = image.height / COORDINATE_MAX;
  return { x: image.x + box.x1 * sx, y: image.y + box.y1 * sy, width: (box.x2 - box.x1) * sx, height: (box.y2 - box.y1) * sy };
}

/** A 0–1000 point in viewport pixels. */
export function pointAt(point: { x: number; y: number }, image: Rect): { x: number; y: number } {
  return { x: image.x + (point.x * image.width) / COORDINATE_MAX, y: image.y + (point.y * image.height) / COORDINATE_MAX };
}

/** The view after zooming by `factor` so that the image point under `cursor` stays under it. */
export function zoomAt(viewport: Size, image: Size, view: View, factor: number, cursor: { x: number; y: number }): View {
  const before = imageRect(viewport, image, view);
  const fit = fitRect(viewport, image);
  if (before === null || fit === null) return view;
  const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, view.zoom * factor));
  if (zoom === MIN_ZOOM) return FITTED;
  const tx = (cursor.x - before.x) / before.width;
  const ty = (cursor.y - before.y) / before.height;
  const cx = viewport.width / 2;
  const cy = viewport.height / 2;
  const x = cursor.x - tx * fit.width * zoom;
  const y = cursor.y - ty * fit.height * zoom;
  return { zoom, panX: x - cx - (fit.x - cx) * zoom, panY: y - cy - (fit.y - cy) * zoom };
}

/** Distinct colours for boxes: hues spread by the golden angle, so neighbours never look alike. */
export function colourFor(index: number): string {
  return `hsl(${Math.round((index * 137.508) % 360)} 85% 50%)`;
}

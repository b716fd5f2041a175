// Boxes and points in a Qwen3-VL answer (spec §9), wherever they appear: JSON inside or outside
// ```json fences, one object or a list, several lists, keys in any order; plus the document-parsing
// forms `data-bbox="x1 y1 x2 y2"` (qwenvl html) and `<!-- Table (x1, y1, x2, y2) -->` (qwenvl markdown).
//
// Streaming: only complete objects/tags are reported. A value cut off at the end of the text (even a
// number such as `[925, 61` that may still grow) is left out until the rest arrives, so a finding,
// once reported, never changes as the answer grows.
//
// Range: coordinates are relative, 0–1000. Values up to TOLERANCE outside are clamped (the model
// overshoots the frame edge by a little); anything further out drops the whole object with
// `out-of-range`, because it is most likely another frame (absolute pixels) and clamping would draw
// it somewhere plausible but wrong.
import { readValue, type JsonValue } from './lenient-json';
import type {
  Grounding,
  GroundingBox,
  GroundingPoint,
  RejectReason,
  Result,
  Span,
} from './types';

export const COORDINATE_MAX = 1000;
/** How far outside 0–1000 a coordinate may be and still be clamped (1% of the frame). */
export const TOLERANCE = 10;

const GROUNDING_KEYS = new Set(['bbox_2d', 'point_2d', 'label']);

type Coords = Result<number[], RejectReason>;

function coordinates(value: JsonValue, arity: number): Coords {
  if (!Array.isArray(value) || value.length !== arity) return { ok: false, error: 'wrong-arity' };
  const out: number[] = [];
  for (const v of value) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return { ok: false, error: 'not-numeric' };
    if (v < -TOLERANCE || v > COORDINATE_MAX + TOLERANCE) return { ok: false, error: 'out-of-range' };
    out.push(Math.min(COORDINATE_MAX, Math.max(0, v)));
  }
  return { ok: true, value: out };
}

function orderedBox([a, b, c, d]: number[]) {
  return { x1: Math.min(a, c), y1: Math.min(b, d), x2: Math.max(a, c), y2: Math.max(b, d) };
}

function labelOf(value: JsonValue | undefined): string | undefined {
  // An empty label (the spatio-temporal prompt asks for `"label": ""`) is no label.
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function isGroundingObject(v: JsonValue): v is { [key: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && ('bbox_2d' in v || 'point_2d' in v);
}

function fromObject(obj: { [key: string]: JsonValue }, span: Span, out: Grounding): void {
  const label = labelOf(obj.label);
  const extras: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(obj)) if (!GROUNDING_KEYS.has(k)) extras[k] = v;
  const withLabel = label === undefined ? {} : { label };

  if ('bbox_2d' in obj) {
    const c = coordinates(obj.bbox_2d, 4);
    if (c.ok) out.boxes.push({ ...orderedBox(c.value), ...withLabel, extras, span, source: 'json' });
    else out.rejected.push({ span, reason: c.error });
  }
  if ('point_2d' in obj) {
    const c = coordinates(obj.point_2d, 2);
    if (c.ok) out.points.push({ x: c.value[0], y: c.value[1], ...withLabel, extras, span });
    else out.rejected.push({ span, reason: c.error });
  }
}

function scanJson(text: string, out: Grounding): void {
  // Every '{' is a candidate, also inside an object already read: boxes may sit inside other
  // objects (`{"objects": [{"bbox_2d": …}]}`, a list whose later items are still streaming, a box
  // with `parts`). Skipping past a box would make its inner boxes vanish the moment it completes.
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) {
    const read = readValue(text, i);
    if (read.kind === 'value' && isGroundingObject(read.value)) {
      fromObject(read.value, { start: i, end: read.end }, out);
    }
  }
}

const NUM = String.raw`-?\d+(?:\.\d+)?`;
// A whole start tag, so a tag still streaming (no `>` yet) is not reported.
const HTML_TAG = /<([A-Za-z][\w-]*)\b([^<>]*?)\sdata-bbox\s*=\s*(["'])([^"'<>]*)\3([^<>]*)>/g;
const CLASS_ATTR = /\bclass\s*=\s*(["'])([^"']*)\1/;
const COMMENT = new RegExp(
  String.raw`<!--\s*([A-Za-z]\w*(?: \w+)*)\s*\(\s*(${NUM})\s*,\s*(${NUM})\s*,\s*(${NUM})\s*,\s*(${NUM})\s*\)\s*-->`,
  'g',
);

function pushBox(
  values: JsonValue[],
  span: Span,
  label: string | undefined,
  extras: Record<string, JsonValue>,
  source: GroundingBox['source'],
  out: Grounding,
): void {
  const c = coordinates(values, 4);
  if (!c.ok) {
    out.rejected.push({ span, reason: c.error });
    return;
  }
  const withLabel = label === undefined ? {} : { label };
  out.boxes.push({ ...orderedBox(c.value), ...withLabel, extras, span, source });
}

function scanHtml(text: string, out: Grounding): void {
  for (const m of text.matchAll(HTML_TAG)) {
    const [whole, tag, before, , bbox, after] = m;
    const span = { start: m.index, end: m.index + whole.length };
    const values = bbox.trim().split(/[\s,]+/).map((v) => (/^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v));
    const cls = CLASS_ATTR.exec(`${before} ${after}`)?.[2];
    const extras: Record<string, JsonValue> = cls === undefined ? { tag } : { tag, class: cls };
    pushBox(values, span, cls ?? tag, extras, 'html', out);
  }
}

function scanComments(text: string, out: Grounding): void {
  for (const m of text.matchAll(COMMENT)) {
    const span = { start: m.index, end: m.index + m[0].length };
    pushBox(m.slice(2, 6).map(Number), span, m[1], {}, 'comment', out);
  }
}

/** Every box and point in `text` (a whole or still-streaming answer), in text order. Never throws;
 *  what looked like grounding but was not usable is listed in `rejected` with the reason. */
export function parseGrounding(text: string): Grounding {
  const out: Grounding = { boxes: [], points: [], rejected: [] };
  scanJson(text, out);
  scanHtml(text, out);
  scanComments(text, out);
  const byStart = (a: { span: Span }, b: { span: Span }) => a.span.start - b.span.start;
  out.boxes.sort(byStart);
  out.points.sort(byStart);
  out.rejected.sort(byStart);
  return out;
}

export interface PixelBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface PixelPoint {
  x: number;
  y: number;
}

export type ImageSizeError = 'bad-image-size';

function validSize(width: number, height: number): boolean {
  return Number.isFinite(width) && Number.isFinite(height) && width > 0 && height > 0;
}

/** Maps a box from the 0–1000 frame to pixels of an image of `width`×`height` (spec §9:
 *  x_px = x/1000·W, y_px = y/1000·H). Fractional pixels are kept; round when drawing if needed. */
export function toPixels(
  box: Pick<GroundingBox, 'x1' | 'y1' | 'x2' | 'y2'>,
  width: number,
  height: number,
): Result<PixelBox, ImageSizeError> {
  if (!validSize(width, height)) return { ok: false, error: 'bad-image-size' };
  const sx = width / COORDINATE_MAX;
  const sy = height / COORDINATE_MAX;
  return { ok: true, value: { x1: box.x1 * sx, y1: box.y1 * sy, x2: box.x2 * sx, y2: box.y2 * sy } };
}

/** `toPixels` for a point. */
export function pointToPixels(
  point: Pick<GroundingPoint, 'x' | 'y'>,
  width: number,
  height: number,
): Result<PixelPoint, ImageSizeError> {
  if (!validSize(width, height)) return { ok: false, error: 'bad-image-size' };
  return { ok: true, value: { x: (point.x * width) / COORDINATE_MAX, y: (point.y * height) / COORDINATE_MAX } };
}

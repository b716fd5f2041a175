// Wrapping parts of the SOURCE text (spans from the parsers) in elements of the RENDERED answer:
// timestamp chips that seek the player (issue 7) and grounding references the overlay highlights
// on hover (issue 5). Markdown moves text around, so the spans are carried through marked as
// private-use characters inserted at the span edges and turned into elements after rendering.
// Any private-use character of the answer itself is replaced first, so a model cannot forge a mark.
import type { Span } from '../parse/types';

export type Mark =
  | { kind: 'timestamp'; span: Span; start: number; end?: number }
  /** `index` is the position in `Grounding.boxes` / `Grounding.points`. */
  | { kind: 'box' | 'point'; span: Span; index: number };

const OPEN = '\uE000';
const CLOSE = '\uE001';
const ID_BASE = 0xe100;
const MAX_MARKS = 0x1000;
const ANY_MARK_CHAR = /[\uE000\uE001\uE100-\uF0FF]/g;
const MARK = /([\uE000\uE001])([\uE100-\uF0FF])/g;

/** Removes marks from text bound for an attribute, a URL or TeX, where an element cannot go. */
export function stripMarks(text: string): string {
  return text.replace(MARK, '').replace(ANY_MARK_CHAR, '');
}

/** Keeps only marks that nest or are disjoint: a crossing pair cannot become nested elements. */
function nestable(marks: readonly Mark[]): Mark[] {
  const sorted = marks
    .filter((m) => m.span.start < m.span.end)
    .sort((a, b) => a.span.start - b.span.start || b.span.end - a.span.end);
  const kept: Mark[] = [];
  for (const m of sorted) {
    const crosses = kept.some(
      (k) => m.span.start < k.span.end && k.span.start < m.span.end && !(k.span.start <= m.span.start && m.span.end <= k.span.end),
    );
    if (!crosses && kept.length < MAX_MARKS) kept.push(m);
  }
  return kept;
}

/** `text` with mark characters at every kept span's edges, and the kept marks (ids = positions). */
export function insertMarks(text: string, marks: readonly Mark[]): { source: string; kept: Mark[] } {
  // Same length replacement, so the spans still index the text.
  const clean = text.replace(ANY_MARK_CHAR, '\uFFFD');
  const kept = nestable(marks.filter((m) => m.span.start >= 0 && m.span.end <= text.length));
  type Edge = { pos: number; open: boolean; mark: Mark; id: number };
  const edges: Edge[] = kept.flatMap((mark, id) => [
    { pos: mark.span.start, open: true, mark, id },
    { pos: mark.span.end, open: false, mark, id },
  ]);
  // At one position: closes before opens; the outer mark opens first and closes last.
  const outerFirst = (a: Edge, b: Edge) => a.mark.span.start - b.mark.span.start || b.mark.span.end - a.mark.span.end || a.id - b.id;
  edges.sort((a, b) => a.pos - b.pos || Number(a.open) - Number(b.open) || (a.open ? outerFirst(a, b) : outerFirst(b, a)));
  let out = '';
  let at = 0;
  for (const e of edges) {
    out += clean.slice(at, e.pos) + (e.open ? OPEN : CLOSE) + String.fromCharCode(ID_BASE + e.id);
    at = e.pos;
  }
  return { source: out + clean.slice(at), kept };
}

function openTag(m: Mark): string {
  if (m.kind === 'timestamp') {
    const end = m.end === undefined ? '' : ` data-end-seconds="${m.end}"`;
    return `<button type="button" class="timestamp-chip" data-testid="timestamp" data-seconds="${m.start}"${end}>`;
  }
  return `<span class="grounding-ref" data-grounding="${m.kind}" data-index="${m.index}">`;
}

/** Turns the mark characters left in rendered HTML into elements. The result still goes through
 *  the sanitiser; unbalanced leftovers (a span cut by a block boundary) are fixed by its parser. */
export function replaceMarks(html: string, kept: readonly Mark[]): string {
  return html.replace(MARK, (_, edge: string, tag: string) => {
    const m = kept[tag.charCodeAt(0) - ID_BASE];
    if (m === undefined) return '';
    if (edge === OPEN) return openTag(m);
    return m.kind === 'timestamp' ? '</button>' : '</span>';
  });
}

/** Marks for everything the parsers found in an answer. */
export function marksFrom(found: {
  timestamps?: readonly { span: Span; start: number; end?: number }[];
  boxes?: readonly { span: Span }[];
  points?: readonly { span: Span }[];
}): Mark[] {
  return [
    ...(found.boxes ?? []).map((b, index): Mark => ({ kind: 'box', span: b.span, index })),
    ...(found.points ?? []).map((p, index): Mark => ({ kind: 'point', span: p.span, index })),
    ...(found.timestamps ?? []).map(
      (t): Mark => (t.end === undefined ? { kind: 'timestamp', span: t.span, start: t.start } : { kind: 'timestamp', span: t.span, start: t.start, end: t.end }),
    ),
  ];
}

// What the pointer is on, shared by an answer's text and its overlay so each highlights the other.
export interface HoverTarget {
  kind: 'box' | 'point';
  index: number;
}

export function sameTarget(a: HoverTarget | null, b: HoverTarget | null): boolean {
  return a !== null && b !== null && a.kind === b.kind && a.index === b.index;
}

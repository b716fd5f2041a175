// Player times as people write them: `1:05`, `01:05.5`, `1:02:03`, or plain seconds `65.5`.

/** `m:ss`, `h:mm:ss` under/over an hour; with `decimals`, that many digits of the seconds. */
export function formatClock(seconds: number, decimals = 0): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–:––';
  const scale = 10 ** decimals;
  const total = Math.round(seconds * scale) / scale;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total - h * 3600 - m * 60;
  const ss = s.toFixed(decimals).padStart(decimals > 0 ? decimals + 3 : 2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Seconds of `text` (`ss`, `m:ss`, `h:mm:ss`, each with an optional fraction), or undefined
 *  when it is not a time (empty, negative, `1:75`, letters). */
export function parseClock(text: string): number | undefined {
  const t = text.trim();
  if (!/^\d+(?:\.\d+)?$|^\d+:\d{1,2}(?:\.\d+)?$|^\d+:\d{1,2}:\d{1,2}(?:\.\d+)?$/.test(t)) return undefined;
  const parts = t.split(':').map(Number);
  if (parts.length > 1 && parts[parts.length - 1] >= 60) return undefined;
  if (parts.length === 3 && parts[1] >= 60) return undefined;
  return parts.reduce((total, part) => total * 60 + part, 0);
}

// Where things sit on a player's timeline, and which formats the webview plays itself.

/** Left offsets (0–100 %) of the sampled frame times on a timeline `duration` seconds long. */
export function markPositions(times: readonly number[], duration: number): number[] {
  if (!(duration > 0)) return times.map(() => 0);
  return times.map((t) => Math.min(100, Math.max(0, (t / duration) * 100)));
}

/** The time under a pointer at `x` of a track from `left` spanning `width` pixels. */
export function timeAt(x: number, left: number, width: number, duration: number): number {
  if (!(width > 0) || !(duration > 0)) return 0;
  return Math.min(duration, Math.max(0, ((x - left) / width) * duration));
}

/** `seconds` clamped into the video. */
export function clampTime(seconds: number, duration: number): number {
  if (!Number.isFinite(seconds) || seconds < 0) return 0;
  return duration > 0 ? Math.min(seconds, duration) : seconds;
}

/** Containers WebKitGTK/Chromium play in <video> (given codecs GStreamer has); everything else
 *  (Matroska, AVI, QuickTime) goes straight to the thumbnail scrubber. A <video> that still fails
 *  to load falls back to the scrubber at run time. */
export function nativelyPlayable(mime: string): boolean {
  return mime === 'video/mp4' || mime === 'video/webm';
}

/** Scrubber thumbnails are cached per step of this many seconds. */
export const FRAME_STEP = 0.1;

/** `seconds` rounded to the scrubber's cache step (what the backend decodes). */
export function frameKey(seconds: number): number {
  return Math.round(seconds / FRAME_STEP) * FRAME_STEP;
}

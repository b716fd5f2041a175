// Frame previews (chip hover, scrubber): one backend decode per video and cache step, shared by
// every component that asks, including requests still in flight.
import { videoFrame, type Result } from '../ipc';
import { frameKey } from './timeline';

export type FrameFetcher = (hash: string, seconds: number) => Promise<Result<string>>;

export class FrameCache {
  private readonly entries = new Map<string, Promise<string | null>>();

  constructor(private readonly fetch: FrameFetcher = videoFrame) {}

  /** The URL of the frame nearest `seconds` (to the cache step), or null when it cannot be
   *  decoded; a failure is not cached, so a later hover tries again. */
  url(hash: string, seconds: number): Promise<string | null> {
    const at = Number(frameKey(seconds).toFixed(3));
    const key = `${hash}@${at}`;
    const known = this.entries.get(key);
    if (known) return known;
    const pending = this.fetch(hash, at).then((r) => {
      if (r.ok) return r.value;
      this.entries.delete(key);
      return null;
    });
    this.entries.set(key, pending);
    return pending;
  }
}

export const frames = new FrameCache();

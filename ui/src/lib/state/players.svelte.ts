// The video players in the open conversation: where each one is, which one the user touched last
// (a "here" question refers to it), and seek requests from timestamp chips.
import type { Attachment } from '../ipc';
import type { Here } from '../video/players';

export interface SeekRequest {
  key: string;
  seconds: number;
  /** Distinguishes two clicks on the same chip. */
  nonce: number;
}

export class PlayersState {
  positions = $state<Record<string, number>>({});
  request = $state<SeekRequest | null>(null);
  active = $state<{ key: string; attachment: Attachment } | null>(null);
  private nonce = 0;

  seek(key: string, seconds: number): void {
    this.request = { key, seconds, nonce: ++this.nonce };
  }

  /** A player moved (playback, scrubbing, a seek). */
  report(key: string, attachment: Attachment, seconds: number, touched = true): void {
    this.positions[key] = seconds;
    if (touched || this.active === null) this.active = { key, attachment };
  }

  /** The position "here" means: the last player the user touched, where it is now. */
  get here(): (Here & { attachment: Attachment }) | null {
    const a = this.active;
    if (a === null) return null;
    // To a tenth of a second, the scrubber's step: finer than anything a question can mean.
    const seconds = Math.round((this.positions[a.key] ?? 0) * 10) / 10;
    return { hash: a.attachment.hash, seconds, attachment: a.attachment };
  }

  reset(): void {
    this.positions = {};
    this.request = null;
    this.active = null;
  }
}

export const players = new PlayersState();

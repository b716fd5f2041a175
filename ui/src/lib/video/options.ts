// The per-video settings form (fps, max frames, mm:ss–mm:ss) and the options it sends. The form
// keeps what the user typed; `toOptions` says what is wrong or gives the options.
import type { VideoOptions } from '../ipc';
import { formatClock, parseClock } from './time';

export interface VideoDraft {
  fps: string;
  maxFrames: string;
  start: string;
  end: string;
}

export const EMPTY_DRAFT: VideoDraft = { fps: '', maxFrames: '', start: '', end: '' };

export type Checked = { ok: true; options: VideoOptions } | { ok: false; field: keyof VideoDraft; message: string };

/** The options of a draft, for a video `duration` seconds long (if known). Empty fields are left
 *  to the model's defaults and the whole video. */
export function toOptions(draft: VideoDraft, duration?: number): Checked {
  const options: VideoOptions = {};
  if (draft.fps.trim() !== '') {
    const fps = Number(draft.fps);
    if (!Number.isFinite(fps) || fps <= 0 || fps > 60) return { ok: false, field: 'fps', message: 'Frames per second must be a number above 0 and at most 60.' };
    options.fps = fps;
  }
  if (draft.maxFrames.trim() !== '') {
    const n = Number(draft.maxFrames);
    if (!Number.isInteger(n) || n < 1) return { ok: false, field: 'maxFrames', message: 'Max frames must be a whole number of at least 1.' };
    options.maxFrames = n;
  }
  for (const field of ['start', 'end'] as const) {
    if (draft[field].trim() === '') continue;
    const s = parseClock(draft[field]);
    if (s === undefined) return { ok: false, field, message: `${field === 'start' ? 'Start' : 'End'} must be a time such as 1:20 or 80.` };
    if (duration !== undefined && s > duration + 1e-6) {
      return { ok: false, field, message: `${field === 'start' ? 'Start' : 'End'} is past the end of the video (${formatClock(duration, 1)}).` };
    }
    options[field] = s;
  }
  if (options.start !== undefined && options.end !== undefined && options.end <= options.start) {
    return { ok: false, field: 'end', message: 'The end must come after the start.' };
  }
  return { ok: true, options };
}

/** Whether two option sets ask for the same plan. */
export function sameOptions(a: VideoOptions, b: VideoOptions): boolean {
  return a.fps === b.fps && a.maxFrames === b.maxFrames && a.start === b.start && a.end === b.end;
}

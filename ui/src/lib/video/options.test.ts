import { describe, expect, it } from 'vitest';
import { EMPTY_DRAFT, sameOptions, toOptions } from './options';

const draft = (d: Partial<typeof EMPTY_DRAFT>) => ({ ...EMPTY_DRAFT, ...d });

describe('toOptions', () => {
  it('leaves empty fields to the model and the whole video', () => {
    expect(toOptions(EMPTY_DRAFT, 10)).toStrictEqual({ ok: true, options: {} });
  });
  it('reads fps, max frames and a mm:ss range', () => {
    expect(toOptions(draft({ fps: '2', maxFrames: '64', start: '1:20', end: '02:05' }), 600)).toStrictEqual({
      ok: true,
      options: { fps: 2, maxFrames: 64, start: 80, end: 125 },
    });
  });
  it('takes a range open at one end', () => {
    expect(toOptions(draft({ start: '3.5' }), 10)).toStrictEqual({ ok: true, options: { start: 3.5 } });
    expect(toOptions(draft({ end: '0:04' }))).toStrictEqual({ ok: true, options: { end: 4 } });
  });
  it.each([
    [{ fps: '0' }, 'fps'],
    [{ fps: 'fast' }, 'fps'],
    [{ fps: '120' }, 'fps'],
    [{ maxFrames: '2.5' }, 'maxFrames'],
    [{ maxFrames: '0' }, 'maxFrames'],
    [{ start: 'soon' }, 'start'],
    [{ end: '1:75' }, 'end'],
    [{ start: '0:05', end: '0:03' }, 'end'],
    [{ start: '0:05', end: '0:05' }, 'end'],
    [{ start: '0:11' }, 'start'],
  ])('refuses %j (field %s)', (d, field) => {
    const r = toOptions(draft(d), 10);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.field).toBe(field);
      expect(r.message.length).toBeGreaterThan(10);
    }
  });
  it('names the video length when the range is past the end', () => {
    const r = toOptions(draft({ end: '0:12' }), 10);
    expect(r).toMatchObject({ ok: false, message: expect.stringContaining('0:10.0') });
  });
});

describe('sameOptions', () => {
  it('compares every field', () => {
    expect(sameOptions({ fps: 2 }, { fps: 2 })).toBe(true);
    expect(sameOptions({ fps: 2 }, { fps: 2, start: 0 })).toBe(false);
    expect(sameOptions({ maxFrames: 3 }, { maxFrames: 4 })).toBe(false);
  });
});

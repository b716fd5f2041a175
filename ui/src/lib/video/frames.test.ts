import { describe, expect, it } from 'vitest';
import type { Result } from '../ipc';
import { FrameCache } from './frames';

function fake(results: Record<string, Result<string>>) {
  const asked: string[] = [];
  const fetch = async (hash: string, seconds: number): Promise<Result<string>> => {
    asked.push(`${hash}@${seconds}`);
    return results[`${hash}@${seconds}`] ?? { ok: false, error: { kind: 'engine', message: 'no frame' } };
  };
  return { asked, cache: new FrameCache(fetch) };
}

describe('FrameCache', () => {
  it('asks once per video and cache step, even while the first request is in flight', async () => {
    const { asked, cache } = fake({ 'a@2.5': { ok: true, value: 'asset://f/a-2500.jpg' } });
    const [x, y] = await Promise.all([cache.url('a', 2.5), cache.url('a', 2.51)]);
    expect(x).toBe('asset://f/a-2500.jpg');
    expect(y).toBe(x);
    expect(await cache.url('a', 2.49)).toBe(x);
    expect(asked).toStrictEqual(['a@2.5']);
  });
  it('keeps videos apart', async () => {
    const { asked, cache } = fake({});
    await cache.url('a', 1);
    await cache.url('b', 1);
    expect(asked).toStrictEqual(['a@1', 'b@1']);
  });
  it('gives null for a frame that cannot be decoded and tries again later', async () => {
    const { asked, cache } = fake({});
    expect(await cache.url('a', 1)).toBeNull();
    expect(await cache.url('a', 1)).toBeNull();
    expect(asked).toStrictEqual(['a@1', 'a@1']);
  });
});

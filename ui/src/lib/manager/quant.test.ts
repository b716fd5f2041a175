import { describe, expect, it } from 'vitest';
import { QUANT_CHOICES, precisionOf, quantHint } from './quant';

describe('quantization choice', () => {
  it('offers every engine quantization once, full weights first', () => {
    expect(QUANT_CHOICES.map((c) => c.value)).toEqual(['none', 'q8_0', 'q4k']);
  });

  it('explains the trade in plain words', () => {
    expect(quantHint('none')).toMatch(/best answers/);
    expect(quantHint('q8_0')).toMatch(/half the memory/);
    expect(quantHint('q4k')).toMatch(/quarter of the memory/);
    expect(quantHint('q4k')).toMatch(/can change/);
  });

  it('names the precision of a loaded model, quantized or not', () => {
    expect(precisionOf({ dtype: 'f32', quant: 'none' })).toBe('f32');
    expect(precisionOf({ dtype: 'bf16' })).toBe('bf16');
    expect(precisionOf({ dtype: 'bf16', quant: 'q8_0' })).toBe('bf16 with 8-bit (Q8_0) weights');
    expect(precisionOf({ dtype: 'f32', quant: 'q4k' })).toBe('f32 with 4-bit (Q4_K) weights');
  });
});

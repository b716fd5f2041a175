// The per-load quantization choice: what each option means in plain words, and how a loaded
// model's precision reads.
import type { ModelInfo, Quant } from '../ipc';

export interface QuantChoice {
  value: Quant;
  label: string;
  /** The trade, in plain words, shown under the selector. */
  hint: string;
}

export const QUANT_CHOICES: readonly QuantChoice[] = [
  {
    value: 'none',
    label: 'Full weights',
    hint: 'The model as published: the best answers, and the most memory.',
  },
  {
    value: 'q8_0',
    label: '8-bit (Q8_0)',
    hint:
      'The language model’s weights in 8 bits: about half the memory of 16-bit weights, with answers ' +
      'that rarely differ. Loading takes longer while the weights are converted.',
  },
  {
    value: 'q4k',
    label: '4-bit (Q4_K)',
    hint:
      'The language model’s weights in 4 bits: about a quarter of the memory of 16-bit weights, so ' +
      'larger models fit; answers can change a little more. Loading takes longer while the weights ' +
      'are converted. Images are always seen at full precision.',
  },
];

export function quantHint(q: Quant): string {
  return (QUANT_CHOICES.find((c) => c.value === q) ?? QUANT_CHOICES[0]).hint;
}

/** `bf16`, or `bf16 with 8-bit weights` for a quantized load. */
export function precisionOf(info: Pick<ModelInfo, 'dtype' | 'quant'>): string {
  switch (info.quant) {
    case 'q8_0':
      return `${info.dtype} with 8-bit (Q8_0) weights`;
    case 'q4k':
      return `${info.dtype} with 4-bit (Q4_K) weights`;
    default:
      return info.dtype;
  }
}

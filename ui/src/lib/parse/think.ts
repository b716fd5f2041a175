// Splits a Thinking model's answer into its reasoning and its answer. `<think>`/`</think>` are
// ordinary text tokens (spec §8.1: not special, so decoding keeps them). The Thinking chat template
// ends the prompt with `<think>\n` (spec §8.3), so the generated text usually holds only the closing
// tag; a model or template that writes both tags works too.

const OPEN = '<think>';
const CLOSE = '</think>';

export interface ThinkSplit {
  /** The reasoning, trimmed; null when the text has none. */
  thinking: string | null;
  /** True while the reasoning has started and `</think>` has not arrived yet. */
  thinkingOpen: boolean;
  /** The answer after the reasoning, leading whitespace removed. */
  answer: string;
  /** Offset of `answer` in the input, so spans found in `answer` map back to the whole text. */
  answerOffset: number;
}

export interface ThinkOptions {
  /** The prompt already opened `<think>` (Thinking template): text before `</think>` is reasoning
   *  even though no opening tag appears in it. */
  openedInPrompt?: boolean;
}

/** Length of the longest suffix of `text` that is a proper prefix of `tag`: a tag still streaming. */
function partialTagAtEnd(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--) {
    if (text.endsWith(tag.slice(0, n))) return n;
  }
  return 0;
}

export function splitThink(text: string, options: ThinkOptions = {}): ThinkSplit {
  let bodyStart: number;
  const lead = text.length - text.trimStart().length;
  const rest = text.slice(lead);
  if (rest.startsWith(OPEN)) {
    bodyStart = lead + OPEN.length;
  } else if (!options.openedInPrompt && rest.length < OPEN.length && OPEN.startsWith(rest) && rest !== '') {
    // `<thi` at the very start: most likely an opening tag still arriving; show nothing yet.
    return { thinking: '', thinkingOpen: true, answer: '', answerOffset: text.length };
  } else if (options.openedInPrompt || text.includes(CLOSE)) {
    bodyStart = 0;
  } else {
    return { thinking: null, thinkingOpen: false, answer: text, answerOffset: 0 };
  }

  const close = text.indexOf(CLOSE, bodyStart);
  if (close === -1) {
    const body = text.slice(bodyStart);
    const cut = partialTagAtEnd(body, CLOSE);
    return { thinking: body.slice(0, body.length - cut).trim(), thinkingOpen: true, answer: '', answerOffset: text.length };
  }
  const after = close + CLOSE.length;
  const answerOffset = after + (text.length - after - text.slice(after).trimStart().length);
  return {
    thinking: text.slice(bodyStart, close).trim(),
    thinkingOpen: false,
    answer: text.slice(answerOffset),
    answerOffset,
  };
}

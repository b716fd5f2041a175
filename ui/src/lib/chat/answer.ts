// Everything the UI derives from an assistant message's text: reasoning and answer, the grounding
// in the answer, and the answer as safe HTML with the grounding/timestamp marks.
import { findTimestamps, parseGrounding, splitThink, type Grounding } from '../parse';
import { marksFrom, renderMarkdown } from '../render';

export interface AnswerView {
  thinking: string | null;
  thinkingOpen: boolean;
  grounding: Grounding;
  html: string;
}

export function viewAnswer(content: string, thinking: string | undefined, streaming: boolean): AnswerView {
  const split = splitThink(content);
  const answer = split.answer;
  const grounding = parseGrounding(answer);
  const timestamps = findTimestamps(answer, streaming ? 'streaming' : 'complete');
  const html = renderMarkdown(answer, marksFrom({ timestamps, boxes: grounding.boxes, points: grounding.points }));
  const reasoning = [thinking?.trim() || null, split.thinking].filter((t) => t).join('\n\n');
  return {
    thinking: reasoning === '' ? null : reasoning,
    thinkingOpen: streaming && (split.thinkingOpen || (content === '' && !!thinking)),
    grounding,
    html,
  };
}

// Model answers to safe HTML: markdown, math, timestamp chips and grounding references.
export { ALLOWED_TAGS, renderMarkdown, safeLinkUrl } from './markdown';
export { marksFrom, type Mark } from './marks';

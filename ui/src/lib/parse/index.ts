// Pure parsers over model answers: no DOM, no Svelte, no logging. Components and stores import
// from here.
export type {
  Grounding,
  GroundingBox,
  GroundingPoint,
  GroundingSource,
  JsonValue,
  RejectReason,
  Rejection,
  Result,
  Span,
  Timestamp,
} from './types';
export {
  COORDINATE_MAX,
  TOLERANCE,
  parseGrounding,
  pointToPixels,
  toPixels,
  type ImageSizeError,
  type PixelBox,
  type PixelPoint,
} from './grounding';
export { findTimestamps, type AnswerState } from './timestamps';
export { splitThink, type ThinkOptions, type ThinkSplit } from './think';

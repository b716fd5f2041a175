// A stand-in for the Rust side, for Vitest and for the browser tests (never in the real app:
// only `vite build --mode e2e` and tests import this file). Answers mirror the commands of
// IPC.md; generations stream through the channel the way tauri::ipc::Channel does.
import { clearMocks, mockIPC, mockWindows } from '@tauri-apps/api/mocks';
import type {
  AppError,
  AppStatus,
  Attachment,
  ConversationSummary,
  GenerationEvent,
  GenerationStats,
  ModelInfo,
  StoredMessage,
  VideoPlan,
  VideoRequest,
} from '../src/lib/ipc';
// A real 4 s, 10 fps VP8 clip (ffmpeg testsrc), so the browser plays it in a <video>.
import webmUrl from './ball.webm?url';
import { MockManager, NOT_MINE } from './mock-manager';

export const HOME = '/home/ada';

export const NO_MODEL: AppStatus = {
  version: '0.1.0',
  searchLocations: [
    { kind: 'appData', path: `${HOME}/.local/share/dev.glimpse.app/models`, exists: false },
    { kind: 'huggingFaceCache', path: `${HOME}/.cache/huggingface/hub`, exists: true },
  ],
  models: [],
  unusable: [],
};

export const ONE_MODEL: AppStatus = {
  ...NO_MODEL,
  models: [
    {
      name: 'Qwen/Qwen3-VL-2B-Instruct',
      path: `${HOME}/.cache/huggingface/hub/models--Qwen--Qwen3-VL-2B-Instruct/snapshots/abc`,
      location: 'huggingFaceCache',
      architecture: 'dense',
    },
  ],
};

export const UNREADABLE: AppError = {
  kind: 'unreadableFolder',
  message: `cannot read the model folder ${HOME}/.cache/huggingface/hub: Permission denied (os error 13)`,
};

/** A 128×96 image with a known rectangle, as a data URL (the real app serves asset:// URLs). */
export const IMAGE_URL =
  'data:image/svg+xml,' +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" width="128" height="96"><rect width="128" height="96" fill="#dde"/>' +
      '<rect x="32" y="30" width="30" height="30" fill="#c33"/></svg>',
  );

export const CAT: Attachment = {
  hash: 'b3f1c0ffee',
  kind: 'image',
  mime: 'image/svg+xml',
  byteSize: 2048,
  fileName: 'cat.png',
  width: 128,
  height: 96,
  url: IMAGE_URL,
  visionTokens: 12,
};

/** The grounding answer the mock streams: one box, one point, in a json fence. */
export const GROUNDING_ANSWER =
  'The cat is here:\n```json\n[\n  {"bbox_2d": [250, 312, 484, 625], "label": "cat"},\n  {"point_2d": [750, 500], "label": "eye"}\n]\n```\nAnything else?';

/** Model output trying to run script; it must stay text. */
export const XSS_ANSWER =
  'Look: <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> [click](javascript:window.__xss=3) ' +
  '<a href="https://evil.example" onclick="window.__xss=4">here</a> and [docs](https://example.com/docs).';

/** A 10 s, 10 fps Matroska video (the scrubber's format: the webview does not play it). */
export const CLIP: Attachment = {
  hash: 'c1ip5eed',
  kind: 'video',
  mime: 'video/x-matroska',
  byteSize: 40960,
  fileName: 'ball.mkv',
  width: 160,
  height: 120,
  url: 'asset://localhost/ball.mkv',
  thumbnailUrl: frameUrl(0),
  durationMs: 10_000,
  fps: 10,
};

/** A 4 s WebM the browser plays itself: the player's native <video> mode. */
export const WEBM: Attachment = {
  hash: 'feb0feb0',
  kind: 'video',
  mime: 'video/webm',
  byteSize: 14305,
  fileName: 'ball.webm',
  width: 64,
  height: 48,
  url: webmUrl,
  durationMs: 4_000,
  fps: 10,
};

/** The tiny vision tower and decoder the mock pretends to run before an image answer's first token. */
export const MOCK_VISION_BLOCKS = 8;
export const MOCK_TEXT_LAYERS = 4;

/** The video answer the mock streams: a frame tag, plain seconds and a range. */
export const VIDEO_ANSWER = 'The ball appears at <2.5 seconds> and bounces from 4.0 to 5.5 seconds.';
export const HERE_ANSWER = 'Here, around 00:07, the ball rolls out of the picture.';

/** A decoded frame as the backend would serve it: a picture that says its time. */
export function frameUrl(seconds: number): string {
  return (
    'data:image/svg+xml,' +
    encodeURIComponent(
      `<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120" data-t="${seconds.toFixed(1)}"><rect width="160" height="120" fill="#224"/>` +
        `<text x="10" y="60" fill="#fff" font-size="20">t=${seconds.toFixed(1)}</text></svg>`,
    )
  );
}

/** What the mock's model would see of CLIP: `fps` (2 by default) frames a second over the range,
 *  at most `maxFrames`; `here` is the 6 s around it; 16 tokens per pair of frames. */
export function mockPlan(options: VideoRequest, duration = 10): VideoPlan {
  let start = options.start ?? 0;
  let end = Math.min(options.end ?? duration, duration);
  if (options.here !== undefined) {
    start = Math.max(0, Math.min(options.here - 3, duration - 6));
    end = Math.min(start + 6, duration);
  }
  if (start >= end) throw { kind: 'engine', message: `time range of ball.mkv: ${start}–${end} s holds no frame` };
  const n = Math.max(2, Math.min(options.maxFrames ?? 768, Math.floor((end - start) * (options.fps ?? 2))));
  const frameTimes = Array.from({ length: n }, (_, i) => Number((start + ((end - start - 0.1) * i) / (n - 1)).toFixed(1)));
  return { frameTimes, visionTokens: Math.ceil(n / 2) * 16, width: 160, height: 120, duration, fps: 10, frameCount: 100, start, end };
}

/** Every command the mock answered since the last install, with its arguments (channels as ids). */
export const calls: { cmd: string; args: Record<string, unknown> }[] = [];

export type Scenario = 'no-model' | 'one-model' | 'unreadable';

interface MockOptions {
  /** Milliseconds between streamed tokens (the browser tests slow it down to stop mid-stream). */
  tokenMs?: number;
  /** Milliseconds per simulated download step (40 steps per download). */
  downloadStepMs?: number;
}

// mocks.ts installs runCallback; the Channel registered its id there.
function internals(): { runCallback(id: number, data: unknown): void } {
  return (window as unknown as { __TAURI_INTERNALS__: { runCallback(id: number, data: unknown): void } }).__TAURI_INTERNALS__;
}

function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

export function installMockBackend(scenario: Scenario, options: MockOptions = {}): void {
  const tokenMs = options.tokenMs ?? 5;
  let nextId = 1;
  let loaded: ModelInfo | null = null;
  const conversations = new Map<number, ConversationSummary>();
  const messages = new Map<number, StoredMessage[]>();
  let running: { cancel: boolean } | null = null;

  const now = () => new Date().toISOString();

  /** After `started`, an answer with images reports the vision tower's blocks, then the prompt's
   *  layers (MOCK_VISION_BLOCKS, MOCK_TEXT_LAYERS), one per tick, before its first token. */
  function stream(channelId: number, answer: StoredMessage, text: string, firstIndex = 0, images = 0) {
    const job = { cancel: false };
    running = job;
    let index = firstIndex;
    const send = (message: GenerationEvent) =>
      internals().runCallback(channelId, { index: index++, message });
    const asked = Date.now();
    send({ type: 'started', messageId: answer.id, promptTokens: 42 });
    const prefill: GenerationEvent[] =
      images > 0
        ? [
            ...Array.from({ length: MOCK_VISION_BLOCKS }, (_, k) => ({ type: 'progress' as const, stage: 'image' as const, done: k + 1, total: MOCK_VISION_BLOCKS })),
            ...Array.from({ length: MOCK_TEXT_LAYERS }, (_, k) => ({ type: 'progress' as const, stage: 'prompt' as const, done: k + 1, total: MOCK_TEXT_LAYERS })),
          ]
        : [];
    let firstTokenMs: number | undefined;
    const pieces = chunks(text, 4);
    let i = 0;
    const finish = (finishReason: GenerationStats['finishReason']) => {
      const stats = { promptTokens: 42, generatedTokens: i, prefillMs: 31, decodeTokensPerS: 25, finishReason, ...(firstTokenMs === undefined ? {} : { firstTokenMs }) };
      answer.status = finishReason === 'cancelled' ? 'interrupted' : 'complete';
      answer.stats = stats;
      running = null;
      send({ type: 'done', stats });
      internals().runCallback(channelId, { index, end: true });
    };
    const tick = () => {
      // The test that started this stream has ended and cleared the mocks.
      if (typeof (internals() as Partial<ReturnType<typeof internals>> | undefined)?.runCallback !== 'function') return;
      if (job.cancel) return finish('cancelled');
      const step = prefill.shift();
      if (step) {
        send(step);
        setTimeout(tick, tokenMs);
        return;
      }
      if (i === pieces.length) return finish('eos');
      firstTokenMs ??= Date.now() - asked;
      answer.content += pieces[i];
      send({ type: 'token', text: pieces[i++], thinking: '', elapsedMs: i * tokenMs });
      setTimeout(tick, tokenMs);
    };
    setTimeout(tick, tokenMs);
  }

  function answerFor(text: string): string {
    if (/\bhere\b/i.test(text)) return HERE_ANSWER;
    if (/ball|when/i.test(text)) return VIDEO_ANSWER;
    return /xss/i.test(text) ? XSS_ANSWER : GROUNDING_ANSWER;
  }

  /** Frame extraction before the answer: one progress event per frame, stoppable. */
  function extract(channelId: number, answer: StoredMessage, frames: number, then: () => void) {
    const job = { cancel: false };
    running = job;
    let done = 0;
    const tick = () => {
      if (typeof (internals() as Partial<ReturnType<typeof internals>> | undefined)?.runCallback !== 'function') return;
      if (job.cancel) {
        const stats = { promptTokens: 0, generatedTokens: 0, prefillMs: 0, decodeTokensPerS: 0, finishReason: 'cancelled' as const };
        answer.status = 'interrupted';
        answer.stats = stats;
        running = null;
        internals().runCallback(channelId, { index: done, message: { type: 'done', stats } });
        internals().runCallback(channelId, { index: done + 1, end: true });
        return;
      }
      if (done === frames) return then();
      done++;
      internals().runCallback(channelId, { index: done - 1, message: { type: 'progress', stage: 'video', done, total: frames } });
      setTimeout(tick, tokenMs * 4);
    };
    setTimeout(tick, tokenMs);
  }

  function generate(conversationId: number, channel: { id: number }, text: string, frames = 0, images = 0) {
    const list = messages.get(conversationId) ?? [];
    const answer: StoredMessage = { id: nextId++, role: 'assistant', content: '', status: 'streaming', attachments: [] };
    list.push(answer);
    messages.set(conversationId, list);
    const c = conversations.get(conversationId);
    if (c) c.updatedAt = now();
    if (frames > 0) extract(channel.id, answer, frames, () => stream(channel.id, answer, answerFor(text), frames, images));
    else stream(channel.id, answer, answerFor(text), 0, images);
    return answer.id;
  }

  // Channel messages carry an index; `null` closes the channel.
  const channelIndex = new Map<number, number>();
  const manager = new MockManager((id, message) => {
    const index = channelIndex.get(id) ?? 0;
    channelIndex.set(id, index + 1);
    internals().runCallback(id, message === null ? { index, end: true } : { index, message });
  }, options.downloadStepMs);

  clearMocks();
  calls.length = 0;
  // The browser tests read the calls from the page.
  (window as unknown as { __mockCalls: typeof calls }).__mockCalls = calls;
  mockWindows('main');
  mockIPC((cmd, raw) => {
    const args = (raw ?? {}) as Record<string, unknown>;
    calls.push({ cmd, args: { ...args, ...(args.onEvent ? { onEvent: (args.onEvent as { id: number }).id } : {}) } });
    const busy = () => {
      if (running) throw { kind: 'busy', message: 'An answer is being generated; stop it first.' };
    };
    switch (cmd) {
      case 'app_status': {
        if (scenario === 'unreadable') throw UNREADABLE;
        const base = scenario === 'no-model' ? NO_MODEL : ONE_MODEL;
        return { ...base, models: [...base.models, ...manager.found] };
      }
      case 'loaded_model':
        return loaded;
      case 'load_model': {
        const found = [...ONE_MODEL.models, ...manager.found].find((m) => m.path === args.path);
        if (!found) throw { kind: 'modelNotFound', message: `no model at ${String(args.path)}` };
        if (args.device === 'cuda') {
          throw { kind: 'deviceNotCompiled', message: 'this copy of Glimpse was built without CUDA support, so it cannot load on CUDA; choose the CPU, or build Glimpse with `--features cuda`' };
        }
        const quant = (args.quant as ModelInfo['quant'] | undefined) ?? 'none';
        if (!['none', 'q8_0', 'q4k'].includes(quant)) {
          throw { kind: 'badConfig', message: `quant: \`${String(quant)}\` is not one of none, q8_0, q4k` };
        }
        const progress = args.onProgress as { id: number } | undefined;
        if (progress) {
          internals().runCallback(progress.id, { index: 0, message: { stage: 'checking', step: 1, steps: 7 } });
          internals().runCallback(progress.id, { index: 1, message: { stage: 'buildingModel', step: 7, steps: 7 } });
        }
        loaded = {
          path: found.path,
          name: found.name,
          architecture: found.architecture,
          device: (args.device as ModelInfo['device']) ?? 'cpu',
          dtype: args.dtype === undefined || args.dtype === 'auto' ? 'f32' : (args.dtype as ModelInfo['dtype']),
          quant,
          loadMs: 1234,
          // Quantized decoder weights take less memory (the vision tower stays as loaded).
          memoryBytes: { none: 8_900_000_000, q8_0: 5_100_000_000, q4k: 3_200_000_000 }[quant],
          warnings: args.dtype === 'bf16' && args.device !== 'cuda' ? ['bf16 on the CPU works but is several times slower than f32'] : [],
        };
        return loaded;
      }
      case 'unload_model':
        busy();
        loaded = null;
        return { freedBytes: 8_900_000_000 };
      case 'import_attachment': {
        const path = String(args.path);
        const name = path.split('/').at(-1) ?? path;
        if (/truncated/i.test(name) && /\.(mkv|mp4|webm)$/i.test(name)) {
          throw { kind: 'videoUnreadable', message: `${name} cannot be used as a video: it is truncated or damaged (12 frames found, the header promises 100)` };
        }
        if (/\.webm$/i.test(name)) return WEBM;
        if (/\.(mkv|mp4)$/i.test(name)) return { ...CLIP, fileName: name };
        if (!/\.(png|jpe?g|webp)$/i.test(path)) throw { kind: 'unsupportedFile', message: `${path} is not an image or video Glimpse can read` };
        return { ...CAT, fileName: path.split('/').at(-1) ?? path };
      }
      case 'paste_attachment':
        return { ...CAT, hash: `pasted-${(args.bytes as number[]).length}`, fileName: String(args.name) };
      case 'pick_attachments':
        return [CAT];
      case 'list_conversations': {
        const q = typeof args.search === 'string' ? args.search.toLowerCase() : '';
        return [...conversations.values()]
          .filter((c) => c.title.toLowerCase().includes(q))
          .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt) || b.id - a.id);
      }
      case 'create_conversation': {
        const c = { id: nextId++, title: typeof args.title === 'string' ? args.title : 'New chat', updatedAt: now() };
        conversations.set(c.id, c);
        messages.set(c.id, []);
        return c;
      }
      case 'rename_conversation': {
        const c = conversations.get(args.id as number);
        if (c) c.title = String(args.title);
        return null;
      }
      case 'delete_conversation':
        conversations.delete(args.id as number);
        messages.delete(args.id as number);
        return null;
      case 'conversation_messages':
        return structuredClone(messages.get(args.id as number) ?? []);
      case 'export_conversation': {
        const list = messages.get(args.id as number) ?? [];
        return args.format === 'json' ? JSON.stringify(list) : list.map((m) => `## ${m.role}\n\n${m.content}`).join('\n\n');
      }
      case 'send_message': {
        busy();
        if (!loaded) throw { kind: 'noModelLoaded', message: 'Load a model first.' };
        const id = args.conversationId as number;
        const refs = args.attachments as (string | { hash: string; video?: VideoRequest })[];
        const attachments = refs.map((r): Attachment => {
          const hash = typeof r === 'string' ? r : r.hash;
          const video = typeof r === 'string' ? undefined : r.video;
          const known = [CLIP, WEBM].find((v) => v.hash === hash);
          if (!known) return { ...CAT, hash };
          return video ? { ...known, video } : known;
        });
        const user: StoredMessage = { id: nextId++, role: 'user', content: String(args.text), status: 'complete', attachments };
        messages.get(id)?.push(user);
        const frames = attachments.filter((a) => a.kind === 'video').reduce((n, a) => n + mockPlan(a.video ?? {}, (a.durationMs ?? 10_000) / 1000).frameTimes.length, 0);
        const images = attachments.filter((a) => a.kind === 'image').length;
        const assistantMessageId = generate(id, args.onEvent as { id: number }, user.content, frames, images);
        return { userMessageId: user.id, assistantMessageId };
      }
      case 'regenerate': {
        busy();
        const id = args.conversationId as number;
        const list = messages.get(id) ?? [];
        if (list.at(-1)?.role === 'assistant') list.pop();
        const last = list.at(-1);
        return { userMessageId: last?.id ?? -1, assistantMessageId: generate(id, args.onEvent as { id: number }, last?.content ?? '') };
      }
      case 'edit_and_resend': {
        busy();
        for (const [id, list] of messages) {
          const at = list.findIndex((m) => m.id === args.messageId);
          if (at < 0) continue;
          list.splice(at + 1);
          list[at].content = String(args.text);
          return { userMessageId: list[at].id, assistantMessageId: generate(id, args.onEvent as { id: number }, list[at].content) };
        }
        throw { kind: 'messageNotFound', message: 'no such message' };
      }
      case 'cancel_generation':
        if (running) running.cancel = true;
        return null;
      case 'video_plan':
        if (!loaded) throw { kind: 'noModel', message: 'no model is loaded; load one from the model list first' };
        if (args.hash === WEBM.hash) return mockPlan(args.options as VideoRequest, 4);
        if (args.hash !== CLIP.hash) throw { kind: 'unknownAttachment', message: `attachment ${String(args.hash)} is not in the history; import it first` };
        return mockPlan(args.options as VideoRequest);
      case 'video_frame':
        return frameUrl(Number(args.seconds));
      case 'open_link':
        // The real command opens the system browser; the mock only records the request.
        return null;
      default: {
        const answer = manager.handle(cmd, args);
        if (answer !== NOT_MINE) return answer;
        throw new Error(`the mock backend has no command ${cmd}`);
      }
    }
  });
}

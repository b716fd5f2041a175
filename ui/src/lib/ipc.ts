// The one door to the Rust side. Components call these typed functions and never pass command
// names or raw `invoke` results around. The types mirror src-tauri/src/commands.rs and
// src-tauri/src/model_search.rs (serde camelCase).
import { Channel, invoke } from '@tauri-apps/api/core';

export type LocationKind = 'appData' | 'huggingFaceCache' | 'userFolder';

export interface SearchLocation {
  kind: LocationKind;
  path: string;
  exists: boolean;
}

export interface FoundModel {
  name: string;
  path: string;
  location: LocationKind;
  architecture: 'dense' | 'moe';
}

export interface UnusableModel {
  name: string;
  path: string;
  reason: string;
}

export interface AppStatus {
  version: string;
  searchLocations: SearchLocation[];
  models: FoundModel[];
  unusable: UnusableModel[];
}

/** Errors as the app sends them (src-tauri/src/error.rs), plus `ipc` for failures of the
 *  bridge itself (unknown command, a rejection that is not an app error). The app adds kinds as it
 *  grows (`busy`, `noModelLoaded`…), so any string kind from the app is kept; the UI branches on
 *  the ones it knows and shows the message for the rest. */
export type KnownErrorKind = 'noDataDir' | 'unreadableFolder' | 'busy' | 'ipc';
export type AppErrorKind = KnownErrorKind | (string & {});

export interface AppError {
  kind: AppErrorKind;
  message: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: AppError };

/** Turns whatever a rejected `invoke` gave into an `AppError`, keeping the app's own kinds. */
export function toAppError(thrown: unknown): AppError {
  if (typeof thrown === 'object' && thrown !== null) {
    const { kind, message } = thrown as Record<string, unknown>;
    if (typeof kind === 'string' && kind !== '' && typeof message === 'string') {
      return { kind, message };
    }
  }
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  return { kind: 'ipc', message };
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<Result<T>> {
  try {
    return { ok: true, value: await invoke<T>(command, args) };
  } catch (thrown) {
    return { ok: false, error: toAppError(thrown) };
  }
}

/** Where models are looked for and what was found there. */
export function appStatus(): Promise<Result<AppStatus>> {
  return call<AppStatus>('app_status');
}

// ---- Chat (issue 5; the contract is /work/wt/IPC.md) ----

export type Device = 'cpu' | 'cuda' | 'metal';
export type DType = 'f32' | 'bf16' | 'f16';
/** `auto`: the back end picks (f32 on the CPU when it fits in memory, else bf16). */
export type DTypeChoice = DType | 'auto';
/** How the text decoder's weights are held: as loaded, 8-bit (Q8_0) or 4-bit (Q4_K). */
export type Quant = 'none' | 'q8_0' | 'q4k';

export interface ModelInfo {
  path: string;
  name: string;
  architecture: 'dense' | 'moe';
  device: Device;
  dtype: DType;
  /** Absent from backends older than the quantization selector. */
  quant?: Quant;
  loadMs: number;
  /** Growth of the app's resident memory across the load; absent where not measurable. */
  memoryBytes?: number | null;
  /** The load worked but the choice is poor (bf16 on the CPU is slow). */
  warnings?: string[];
}

export interface Attachment {
  hash: string;
  kind: 'image' | 'video';
  mime: string;
  byteSize: number;
  fileName: string;
  width?: number;
  height?: number;
  /** For `<img src>`: the asset-protocol URL of the stored copy. */
  url: string;
  thumbnailUrl?: string;
  /** Tokens this image will cost with the current budget, when a model is loaded. */
  visionTokens?: number;
  /** Videos: length and frame rate, and the options a sent video was sent with (issue 7). */
  durationMs?: number;
  fps?: number;
  video?: VideoRequest;
}

export interface Settings {
  systemPrompt?: string;
  temperature?: number;
  topP?: number;
  topK?: number;
  maxNewTokens?: number;
  seed?: number;
  minPixels?: number;
  maxPixels?: number;
  thinking?: boolean;
}

export interface ConversationSummary {
  id: number;
  title: string;
  updatedAt: string;
  model?: string;
}

export type MessageStatus = 'complete' | 'streaming' | 'interrupted' | 'error';

export interface GenerationStats {
  promptTokens: number;
  generatedTokens: number;
  prefillMs: number;
  decodeTokensPerS: number;
  finishReason: 'eos' | 'length' | 'cancelled';
  /** From the start of the answer (media decoding included) to its first token; absent when no
   *  token came, and in answers stored before it was measured. */
  firstTokenMs?: number;
}

export interface StoredMessage {
  id: number;
  role: 'user' | 'assistant' | 'system';
  content: string;
  thinking?: string;
  status: MessageStatus;
  attachments: Attachment[];
  stats?: GenerationStats;
}

export type GenerationEvent =
  | { type: 'started'; messageId: number; promptTokens: number }
  | { type: 'token'; text: string; thinking: string; elapsedMs: number }
  | { type: 'done'; stats: GenerationStats }
  | { type: 'error'; error: { kind: string; message: string } }
  | ProgressEvent;

export interface SentIds {
  userMessageId: number;
  assistantMessageId: number;
}

export type ExportFormat = 'markdown' | 'json';

/** Loads a model folder; its stages arrive on `onProgress` (see src-tauri/src/commands/model.rs). */
export function loadModel(
  path: string,
  device?: Device,
  dtype?: DTypeChoice,
  onProgress: (progress: LoadProgress) => void = () => {},
  quant?: Quant,
): Promise<Result<ModelInfo>> {
  const ch = new Channel<LoadProgress>();
  ch.onmessage = onProgress;
  return call<ModelInfo>('load_model', { path, device, dtype, quant, onProgress: ch });
}

export function loadedModel(): Promise<Result<ModelInfo | null>> {
  return call<ModelInfo | null>('loaded_model');
}

export function importAttachment(path: string): Promise<Result<Attachment>> {
  return call<Attachment>('import_attachment', { path });
}

/** Clipboard image data; `bytes` crosses IPC as a number array (the contract's `Vec<u8>`). */
export function pasteAttachment(bytes: Uint8Array, name: string): Promise<Result<Attachment>> {
  return call<Attachment>('paste_attachment', { bytes: Array.from(bytes), name });
}

export function pickAttachments(): Promise<Result<Attachment[]>> {
  return call<Attachment[]>('pick_attachments');
}

/** Opens an answer's link in the system browser (http, https and mailto only). */
export function openLink(url: string): Promise<Result<void>> {
  return call<void>('open_link', { url });
}

export function listConversations(search?: string): Promise<Result<ConversationSummary[]>> {
  return call<ConversationSummary[]>('list_conversations', search ? { search } : {});
}

export function createConversation(title?: string): Promise<Result<ConversationSummary>> {
  return call<ConversationSummary>('create_conversation', { title });
}

export function renameConversation(id: number, title: string): Promise<Result<void>> {
  return call<void>('rename_conversation', { id, title });
}

export function deleteConversation(id: number): Promise<Result<void>> {
  return call<void>('delete_conversation', { id });
}

export function conversationMessages(id: number): Promise<Result<StoredMessage[]>> {
  return call<StoredMessage[]>('conversation_messages', { id });
}

export function exportConversation(id: number, format: ExportFormat): Promise<Result<string>> {
  return call<string>('export_conversation', { id, format });
}

function channel(onEvent: (event: GenerationEvent) => void): Channel<GenerationEvent> {
  const ch = new Channel<GenerationEvent>();
  ch.onmessage = onEvent;
  return ch;
}

/** Starts an answer; resolves once generation has started, events arrive on `onEvent`. */
export function sendMessage(
  conversationId: number,
  text: string,
  attachments: AttachmentRef[],
  settings: Settings,
  onEvent: (event: GenerationEvent) => void,
): Promise<Result<SentIds>> {
  return call<SentIds>('send_message', { conversationId, text, attachments, settings, onEvent: channel(onEvent) });
}

export function regenerate(
  conversationId: number,
  settings: Settings,
  onEvent: (event: GenerationEvent) => void,
): Promise<Result<SentIds>> {
  return call<SentIds>('regenerate', { conversationId, settings, onEvent: channel(onEvent) });
}

export function editAndResend(
  messageId: number,
  text: string,
  settings: Settings,
  onEvent: (event: GenerationEvent) => void,
): Promise<Result<SentIds>> {
  return call<SentIds>('edit_and_resend', { messageId, text, settings, onEvent: channel(onEvent) });
}

export function cancelGeneration(): Promise<Result<void>> {
  return call<void>('cancel_generation');
}

// ---- Video (issue 7): plans, frames and per-video options ----

/** What part of a video is analysed and how densely; absent fields use the model's defaults and
 *  the whole video. Seconds are absolute positions in the file. */
export interface VideoOptions {
  fps?: number;
  maxFrames?: number;
  start?: number;
  end?: number;
}

/** Options a video is sent with. `here`: the player position a follow-up question refers to;
 *  the backend sends the frames around it (and records the range it chose in start/end). */
export interface VideoRequest extends VideoOptions {
  here?: number;
}

/** One attachment of a message to send: a hash, or a hash with its video options. */
export type AttachmentRef = string | { hash: string; video?: VideoRequest };

/** What a video costs and which frames the model will see, before any pixel is decoded. */
export interface VideoPlan {
  /** Seconds (absolute) of every sampled frame, in order. */
  frameTimes: number[];
  visionTokens: number;
  width: number;
  height: number;
  /** Seconds. */
  duration: number;
  fps: number;
  frameCount: number;
  /** The range the plan covers, in seconds, after `here` and clamping. */
  start: number;
  end: number;
}

/** Work before the first token, in order: `video` counts extracted frames (before `started`);
 *  then `image` / `videoFrames` the vision tower's blocks over the images / videos, and `prompt`
 *  the decoder's layers over the whole prompt. */
export type ProgressStage = 'video' | 'image' | 'videoFrames' | 'prompt';
export type ProgressEvent = { type: 'progress'; stage: ProgressStage; done: number; total: number };

export function videoPlan(hash: string, options: VideoRequest): Promise<Result<VideoPlan>> {
  return call<VideoPlan>('video_plan', { hash, options });
}

/** The asset URL of a small JPEG of the frame at `seconds` (cached by the backend). */
export function videoFrame(hash: string, seconds: number): Promise<Result<string>> {
  return call<string>('video_frame', { hash, seconds });
}

// ---- Model manager (issue 6; src-tauri/src/commands/manager.rs, src-tauri/src/models/) ----

export type CatalogDtype = 'bf16' | 'f16' | 'f32';

export interface MemoryNeed {
  dtype: CatalogDtype;
  weightsBytes: number;
  allowanceBytes: number;
  totalBytes: number;
}

export interface CatalogEntry {
  repo: string;
  sizeLabel: string;
  flavour: 'instruct' | 'thinking';
  moe: boolean;
  parameters: number;
  downloadBytes: number;
  /** The parameter count comes from an unverified config (32B). */
  estimated: boolean;
  memory: MemoryNeed[];
}

export interface Fit {
  dtype: CatalogDtype;
  fitsCpu: boolean;
  /** Null when no usable GPU is known. */
  fitsGpu: boolean | null;
}

export interface CatalogRow {
  entry: CatalogEntry;
  fits: Fit[];
}

export interface GpuInfo {
  name: string;
  totalVramBytes: number;
  freeVramBytes: number | null;
}

export interface SystemInfo {
  totalRamBytes: number;
  availableRamBytes: number;
  cpuCores: number;
  gpu: GpuInfo | null;
}

export interface Recommendation {
  entry: CatalogEntry;
  device: 'cpu' | 'gpu';
  dtype: CatalogDtype;
  countedBytes: number;
  budgetBytes: number;
  reason: string;
}

export interface CatalogView {
  system: SystemInfo;
  backends: { cuda: boolean; metal: boolean };
  rows: CatalogRow[];
  recommendation: Recommendation | null;
  endpoint: string;
}

export type Validation =
  | { status: 'usable'; summary: string; architecture: 'dense' | 'moe'; parameters: number; weightBytes: number }
  | { status: 'unusable'; reason: string };

export type ModelSource = LocationKind;

export interface LocalModel {
  name: string;
  path: string;
  source: ModelSource;
  validation: Validation;
}

export interface PartialDownload {
  repo: string;
  keptBytes: number;
}

export interface LocalModels {
  locations: SearchLocation[];
  models: LocalModel[];
  partialDownloads: PartialDownload[];
}

export interface PlannedFile {
  name: string;
  size: number;
  etag: string;
  sha256: string | null;
}

export type DownloadEvent =
  | { event: 'started'; repo: string; commit: string; files: PlannedFile[]; totalBytes: number; alreadyDone: number }
  | {
      event: 'progress';
      file: string;
      fileDone: number;
      fileSize: number;
      totalDone: number;
      totalBytes: number;
      bytesPerSec: number;
      etaSecs: number | null;
    }
  | { event: 'fileDone'; file: string }
  | { event: 'finished'; snapshot: string };

export type DownloadOutcome = { status: 'complete'; snapshot: string } | { status: 'stopped'; keptBytes: number };

export interface LoadProgress {
  stage: string;
  step: number;
  steps: number;
}

export function modelCatalog(): Promise<Result<CatalogView>> {
  return call<CatalogView>('model_catalog');
}

export function localModels(): Promise<Result<LocalModels>> {
  return call<LocalModels>('local_models');
}

/** Adds a folder by its path, or (without one) through the native folder picker; null when the
 *  picker was cancelled. */
export function addModelFolder(path?: string): Promise<Result<LocalModels | null>> {
  return call<LocalModels | null>('add_model_folder', { path });
}

export function removeModelFolder(path: string): Promise<Result<LocalModels>> {
  return call<LocalModels>('remove_model_folder', { path });
}

/** Downloads or resumes `repo`; resolves when it completes, pauses, is cancelled or fails. */
export function startDownload(repo: string, onEvent: (event: DownloadEvent) => void): Promise<Result<DownloadOutcome>> {
  const ch = new Channel<DownloadEvent>();
  ch.onmessage = onEvent;
  return call<DownloadOutcome>('start_download', { repo, onEvent: ch });
}

export function pauseDownload(repo: string): Promise<Result<boolean>> {
  return call<boolean>('pause_download', { repo });
}

/** Stops and deletes the partial files (also those left by an earlier session). */
export function cancelDownload(repo: string): Promise<Result<boolean>> {
  return call<boolean>('cancel_download', { repo });
}

export function unloadModel(): Promise<Result<{ freedBytes: number | null }>> {
  return call<{ freedBytes: number | null }>('unload_model');
}

// The model manager's part of the mock backend (see mock-backend.ts): a catalogue for a 24 GB
// CPU-only machine, downloads that stream progress on a timer and honour pause and cancel, and
// added folders. The 2B download fails as if the hub were unreachable, to show that error.
import type {
  CatalogEntry,
  CatalogView,
  DownloadEvent,
  FoundModel,
  LocalModel,
  LocalModels,
  PartialDownload,
} from '../src/lib/ipc';

const HOME = '/home/ada';
const HUB = `${HOME}/.cache/huggingface/hub`;
export const RECOMMENDED = 'Qwen/Qwen3-VL-4B-Instruct';
export const OFFLINE_REPO = 'Qwen/Qwen3-VL-2B-Instruct';
export const GOOD_FOLDER = `${HOME}/models/tiny-vl`;
export const BROKEN_FOLDER = `${HOME}/models/half-copied`;
export const BROKEN_REASON = 'model.safetensors: the file is 812 bytes but its header describes 1620416';

const GB = 1e9;

function entry(size: string, params: number, moe = false): CatalogEntry {
  return {
    repo: `Qwen/Qwen3-VL-${size}-Instruct`,
    sizeLabel: size,
    flavour: 'instruct',
    moe,
    parameters: params,
    downloadBytes: params * 2,
    estimated: false,
    memory: (['bf16', 'f16', 'f32'] as const).map((dtype) => {
      const weightsBytes = params * (dtype === 'f32' ? 4 : 2);
      return { dtype, weightsBytes, allowanceBytes: 1.5 * GB, totalBytes: weightsBytes + 1.5 * GB };
    }),
  };
}

function catalog(): CatalogView {
  const entries = [entry('2B', 2.128e9), entry('4B', 4.438e9), entry('8B', 8.767e9), entry('30B-A3B', 31.07e9, true)];
  const budget = 0.6 * 24 * GB;
  const rows = entries.map((e) => ({
    entry: e,
    fits: e.memory.map((m) => ({ dtype: m.dtype, fitsCpu: m.weightsBytes <= budget, fitsGpu: null })),
  }));
  const four = entries[1];
  return {
    system: { totalRamBytes: 24 * GB, availableRamBytes: 18 * GB, cpuCores: 2, gpu: null },
    backends: { cuda: false, metal: false },
    rows,
    recommendation: {
      entry: four,
      device: 'cpu',
      dtype: 'bf16',
      countedBytes: four.memory[0].weightsBytes,
      budgetBytes: budget,
      reason: `${four.repo}'s weights take about 8.9 GB in Bf16; this machine has 24.0 GB of RAM (60% budget: 14.4 GB)`,
    },
    endpoint: 'https://huggingface.co',
  };
}

const FILES = [
  { name: 'config.json', size: 4_000, etag: 'c', sha256: null },
  { name: 'tokenizer.json', size: 11_000_000, etag: 't', sha256: null },
  { name: 'model-00001-of-00002.safetensors', size: 5_000_000_000, etag: 'a', sha256: 'a' },
  { name: 'model-00002-of-00002.safetensors', size: 3_900_000_000, etag: 'b', sha256: 'b' },
];
const TOTAL = FILES.reduce((n, f) => n + f.size, 0);

interface Job {
  stop: 'pause' | 'cancel' | null;
}

type Send = (channelId: number, message: DownloadEvent | null) => void;

/** Manager commands; `NOT_MINE` for the rest. */
export const NOT_MINE = Symbol('not a manager command');

export class MockManager {
  /** Models the mock "downloaded" or the user added, for app_status and load_model. */
  readonly found: FoundModel[] = [];
  private folders: LocalModel[] = [];
  private partials: PartialDownload[] = [];
  private jobs = new Map<string, Job>();

  constructor(
    private send: Send,
    /** Milliseconds per progress step. */
    private stepMs = 60,
  ) {}

  private local(): LocalModels {
    const hub: LocalModel[] = this.found
      .filter((m) => m.location === 'huggingFaceCache')
      .map((m) => ({
        name: m.name,
        path: m.path,
        source: 'huggingFaceCache',
        validation: { status: 'usable', summary: 'dense Qwen3-VL, 4.4 B parameters in 2 files', architecture: 'dense', parameters: 4.4e9, weightBytes: 8.9e9 },
      }));
    return {
      locations: [
        { kind: 'appData', path: `${HOME}/.local/share/dev.glimpse.app/models`, exists: false },
        { kind: 'huggingFaceCache', path: HUB, exists: true },
      ],
      models: [...hub, ...this.folders],
      partialDownloads: [...this.partials],
    };
  }

  handle(cmd: string, args: Record<string, unknown>): unknown {
    switch (cmd) {
      case 'model_catalog':
        return catalog();
      case 'local_models':
        return this.local();
      case 'add_model_folder':
        return this.addFolder(args.path as string | undefined);
      case 'remove_model_folder':
        this.folders = this.folders.filter((f) => f.path !== args.path);
        return this.local();
      case 'start_download':
        return this.download(String(args.repo), (args.onEvent as { id: number }).id);
      case 'pause_download':
      case 'cancel_download': {
        const job = this.jobs.get(String(args.repo));
        if (job) job.stop = cmd === 'pause_download' ? 'pause' : 'cancel';
        else if (cmd === 'cancel_download') this.partials = this.partials.filter((p) => p.repo !== args.repo);
        return job !== undefined;
      }
      default:
        return NOT_MINE;
    }
  }

  private addFolder(path: string | undefined): LocalModels | null {
    if (path === undefined) return null; // the picker was cancelled
    if (path !== GOOD_FOLDER && path !== BROKEN_FOLDER) {
      throw { kind: 'folderNotFound', message: `${path} is not a folder on this computer` };
    }
    if (!this.folders.some((f) => f.path === path)) {
      this.folders.push({
        name: path,
        path,
        source: 'userFolder',
        validation:
          path === GOOD_FOLDER
            ? { status: 'usable', summary: 'dense Qwen3-VL, 1.6 M parameters in 1 file', architecture: 'dense', parameters: 1.6e6, weightBytes: 1.6e6 }
            : { status: 'unusable', reason: BROKEN_REASON },
      });
      if (path === GOOD_FOLDER) {
        this.found.push({ name: 'tiny-vl', path, location: 'appData', architecture: 'dense' });
      }
    }
    return this.local();
  }

  private download(repo: string, channel: number): Promise<unknown> {
    if (repo === OFFLINE_REPO) {
      return Promise.reject({
        kind: 'offline',
        message: 'cannot reach the model hub at https://huggingface.co (Connection refused). Check the internet connection; models already downloaded keep working offline.',
      });
    }
    const job: Job = { stop: null };
    this.jobs.set(repo, job);
    const kept = this.partials.find((p) => p.repo === repo)?.keptBytes ?? 0;
    this.partials = this.partials.filter((p) => p.repo !== repo);
    this.send(channel, { event: 'started', repo, commit: 'c0ffee', files: FILES, totalBytes: TOTAL, alreadyDone: kept });
    const step = TOTAL / 40;
    let done = kept;
    let ticks = 0;
    return new Promise((resolve) => {
      const tick = () => {
        if (job.stop) {
          this.jobs.delete(repo);
          if (job.stop === 'pause') this.partials.push({ repo, keptBytes: done });
          this.send(channel, null);
          return resolve({ status: 'stopped', keptBytes: job.stop === 'pause' ? done : 0 });
        }
        done = Math.min(TOTAL, done + step);
        ticks++;
        let start = 0;
        for (const f of FILES) {
          if (done < start + f.size) {
            const secs = (ticks * this.stepMs) / 1000;
            const speed = (done - kept) / secs;
            this.send(channel, {
              event: 'progress', file: f.name, fileDone: Math.round(done - start), fileSize: f.size,
              totalDone: Math.round(done), totalBytes: TOTAL, bytesPerSec: speed, etaSecs: (TOTAL - done) / speed,
            });
            break;
          }
          start += f.size;
        }
        if (done >= TOTAL) {
          this.jobs.delete(repo);
          for (const f of FILES) this.send(channel, { event: 'fileDone', file: f.name });
          const snapshot = `${HUB}/models--${repo.replace('/', '--')}/snapshots/c0ffee`;
          this.send(channel, { event: 'finished', snapshot });
          this.send(channel, null);
          this.found.push({ name: repo, path: snapshot, location: 'huggingFaceCache', architecture: 'dense' });
          return resolve({ status: 'complete', snapshot });
        }
        setTimeout(tick, this.stepMs);
      };
      setTimeout(tick, this.stepMs);
    });
  }
}

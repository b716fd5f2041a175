// Browser tests of the model manager (issue 6) against the mocked backend (e2e/mock-backend.ts and
// e2e/mock-manager.ts): the first-run path to the recommended download, pause/resume/cancel,
// error messages, added folders, device/dtype refusals, load progress and unload.
//
// Stable test ids the manager exposes (also used by e2e/app-manager.mjs against the real app):
//   open-manager (no-model panel button), header-manager (header button), model-manager (the view),
//   close-manager, system-info, recommended, recommended-repo, download-recommended,
//   load-recommended, load-downloaded,
//   catalog, catalog-row[data-repo], catalog-download,
//   download-progress[data-repo][data-status], download-status, download-total, download-speed,
//   download-eta, download-file, pause-download, resume-download, cancel-download,
//   download-error[data-kind], partial-download[data-repo], resume-partial, discard-partial,
//   local-model[data-path][data-usable], local-model-summary, local-model-reason, local-load,
//   remove-folder, no-local-models, add-folder-path, add-folder-submit, pick-folder,
//   add-folder-error[data-kind], load-device, load-dtype, load-quant, load-quant-hint,
//   loaded-precision, load-progress, loaded-info,
//   loaded-memory, unload-model, load-warning, load-error[data-kind], manager-error[data-kind].
import { assert, test } from './harness.mjs';

const RECOMMENDED = 'Qwen/Qwen3-VL-4B-Instruct';
const GOOD_FOLDER = '/home/ada/models/tiny-vl';
const BROKEN_FOLDER = '/home/ada/models/half-copied';

const progressOf = (page, repo) => page.locator(`[data-testid="download-progress"][data-repo="${repo}"]`);

async function waitStatus(page, repo, status, timeout = 10_000) {
  await page.locator(`[data-testid="download-progress"][data-repo="${repo}"][data-status="${status}"]`).waitFor({ timeout });
}

async function openManager(open, query) {
  const { page, errors } = await open(`no-model&${query}`);
  await page.getByTestId('open-manager').click();
  await page.getByTestId('model-manager').waitFor({ timeout: 10_000 });
  await page.getByTestId('recommended-repo').waitFor({ timeout: 10_000 });
  return { page, errors };
}

export function managerTests(open) {
  test('manager: a fresh start leads to the recommended download, then to loading it', async () => {
    const { page, errors } = await open('no-model&downloadStepMs=40');
    const panel = page.getByTestId('no-model');
    await panel.waitFor({ timeout: 10_000 });
    await page.getByTestId('open-manager').click();
    const rec = page.getByTestId('recommended');
    await rec.waitFor({ timeout: 10_000 });
    assert((await page.getByTestId('recommended-repo').textContent()) === RECOMMENDED, 'recommended repo');
    const system = await page.getByTestId('system-info').textContent();
    assert(system.includes('24.0 GB of RAM') && system.includes('no GPU'), `system info: ${system}`);
    // The recommended row is the highlighted one; a row that does not fit says so.
    assert(await page.locator(`[data-testid="catalog-row"][data-repo="${RECOMMENDED}"].recommended`).count() === 1, 'highlighted row');
    const thirty = await page.locator('[data-testid="catalog-row"][data-repo="Qwen/Qwen3-VL-30B-A3B-Instruct"]').textContent();
    assert(thirty.includes('too large'), `30B row: ${thirty}`);
    await page.screenshot({ path: `${process.env.SHOTS}/browser-manager.png` });

    await page.getByTestId('download-recommended').click();
    const progress = progressOf(page, RECOMMENDED);
    await waitStatus(page, RECOMMENDED, 'downloading');
    await page.getByTestId('download-speed').waitFor({ timeout: 5_000 });
    const speed = await page.getByTestId('download-speed').textContent();
    const eta = await page.getByTestId('download-eta').textContent();
    assert(/\d+(\.\d)? [kMG]B\/s/.test(speed), `speed: ${speed}`);
    assert(/left$/.test(eta) && !eta.startsWith('—'), `eta: ${eta}`);
    assert((await progress.getByTestId('download-file').count()) === 4, 'one line per file');
    await waitStatus(page, RECOMMENDED, 'complete');
    const total = await progress.getByTestId('download-total').textContent();
    assert(total.includes('(100%)'), `total: ${total}`);
    // Verified and listed; the recommendation now says it is here.
    const local = page.locator('[data-testid="local-model"][data-usable="true"]', { hasText: RECOMMENDED });
    await local.waitFor({ timeout: 5_000 });
    assert(await page.getByTestId('download-recommended').count() === 0, 'download button still offered');
    // Loading is one click away from both the finished download and the recommendation.
    assert(await progress.getByTestId('load-downloaded').count() === 1, 'no Load on the finished download');
    assert(await page.getByTestId('load-recommended').count() === 1, 'no Load on the recommendation');

    await local.getByTestId('local-load').click();
    // Loading returns to the chat, with the model and its memory in the badge.
    const badge = page.getByTestId('loaded-model');
    await badge.waitFor({ timeout: 10_000 });
    const text = await badge.textContent();
    assert(text.includes(RECOMMENDED) && text.includes('8.9 GB'), `badge: ${text}`);
    assert(await page.getByTestId('model-manager').count() === 0, 'the manager stayed open');
    const load = (await page.evaluate(() => window.__mockCalls)).find((c) => c.cmd === 'load_model');
    assert(load.args.device === 'cpu' && load.args.dtype === 'auto', `load args: ${JSON.stringify(load.args)}`);
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('manager: pause keeps the partial, resume continues, cancel discards', async () => {
    const { page } = await openManager(open, 'downloadStepMs=150');
    await page.getByTestId('download-recommended').click();
    const progress = progressOf(page, RECOMMENDED);
    await waitStatus(page, RECOMMENDED, 'downloading');
    await page.waitForFunction(() => /\((\d+)%\)/.exec(document.querySelector('[data-testid="download-total"]')?.textContent ?? '')?.[1] >= 5);
    await progress.getByTestId('pause-download').click();
    await waitStatus(page, RECOMMENDED, 'paused');
    const pausedAt = Number(/\((\d+)%\)/.exec(await progress.getByTestId('download-total').textContent())[1]);
    assert(pausedAt > 0 && pausedAt < 100, `paused at ${pausedAt}%`);
    await progress.getByTestId('resume-download').click();
    await waitStatus(page, RECOMMENDED, 'downloading');
    await page.waitForFunction(
      (at) => Number(/\((\d+)%\)/.exec(document.querySelector('[data-testid="download-total"]')?.textContent ?? '')?.[1]) > at,
      pausedAt,
    );
    await progress.getByTestId('cancel-download').click();
    await waitStatus(page, RECOMMENDED, 'cancelled');
    const status = await progress.getByTestId('download-status').textContent();
    assert(status.includes('deleted'), `status: ${status}`);
    const calls = (await page.evaluate(() => window.__mockCalls)).map((c) => c.cmd);
    assert(calls.filter((c) => c === 'start_download').length === 2, `calls: ${calls}`);
    assert(calls.includes('pause_download') && calls.includes('cancel_download'), `calls: ${calls}`);
  });

  test('manager: an unreachable hub is a clear message with a retry', async () => {
    const { page } = await openManager(open, 'downloadStepMs=40');
    await page.locator('[data-testid="catalog-row"][data-repo="Qwen/Qwen3-VL-2B-Instruct"] [data-testid="catalog-download"]').click();
    const error = page.getByTestId('download-error');
    await error.waitFor({ timeout: 5_000 });
    assert((await error.getAttribute('data-kind')) === 'offline', 'error kind');
    assert((await error.textContent()).includes('cannot reach the model hub'), 'error text');
    assert(await progressOf(page, 'Qwen/Qwen3-VL-2B-Instruct').getByTestId('resume-download').count() === 1, 'no retry');
  });

  test('manager: folders are added by path with reasons, loads refuse impossible devices, unload works', async () => {
    const { page, errors } = await openManager(open, 'downloadStepMs=40');
    assert(await page.getByTestId('no-local-models').count() === 1, 'empty local list');
    const input = page.getByTestId('add-folder-path');
    await input.fill('/home/ada/nowhere');
    await page.getByTestId('add-folder-submit').click();
    const folderError = page.getByTestId('add-folder-error');
    await folderError.waitFor({ timeout: 5_000 });
    assert((await folderError.getAttribute('data-kind')) === 'folderNotFound', 'folder error kind');
    assert((await input.inputValue()) === '/home/ada/nowhere', 'the typed path was lost');

    await input.fill(BROKEN_FOLDER);
    await input.press('Enter');
    const broken = page.locator(`[data-testid="local-model"][data-path="${BROKEN_FOLDER}"]`);
    await broken.waitFor({ timeout: 5_000 });
    assert((await broken.getAttribute('data-usable')) === 'false', 'broken folder usable');
    assert((await broken.getByTestId('local-model-reason').textContent()).includes('header describes'), 'reason');
    assert(await broken.getByTestId('local-load').count() === 0, 'an unusable folder offers Load');

    await input.fill(GOOD_FOLDER);
    await page.getByTestId('add-folder-submit').click();
    const good = page.locator(`[data-testid="local-model"][data-path="${GOOD_FOLDER}"][data-usable="true"]`);
    await good.waitFor({ timeout: 5_000 });

    await page.getByTestId('load-device').selectOption('cuda');
    await good.getByTestId('local-load').click();
    const loadError = page.getByTestId('load-error');
    await loadError.waitFor({ timeout: 5_000 });
    assert((await loadError.getAttribute('data-kind')) === 'deviceNotCompiled', 'load error kind');
    assert((await loadError.textContent()).includes('without CUDA'), 'load error text');

    await page.getByTestId('load-device').selectOption('cpu');
    await page.getByTestId('load-dtype').selectOption('bf16');
    await good.getByTestId('local-load').click();
    await page.getByTestId('loaded-model').waitFor({ timeout: 5_000 });
    // Back in the manager from the header: memory, the bf16 warning, and unload.
    await page.getByTestId('header-manager').click();
    const info = page.getByTestId('loaded-info');
    await info.waitFor({ timeout: 5_000 });
    assert((await page.getByTestId('loaded-memory').textContent()) === '8.9 GB', 'memory');
    assert((await page.getByTestId('load-warning').textContent()).includes('slower'), 'bf16 warning');
    await page.getByTestId('unload-model').click();
    await info.waitFor({ state: 'detached', timeout: 5_000 });

    // Quantized weights are chosen per load, with the trade explained; the loaded model says
    // how it is held and takes less memory.
    assert((await page.getByTestId('load-quant').inputValue()) === 'none', 'full weights by default');
    assert((await page.getByTestId('load-quant-hint').textContent()).includes('best answers'), 'default hint');
    await page.getByTestId('load-quant').selectOption('q8_0');
    assert((await page.getByTestId('load-quant-hint').textContent()).includes('half the memory'), 'q8_0 hint');
    await good.getByTestId('local-load').click();
    await page.getByTestId('loaded-model').waitFor({ timeout: 5_000 });
    await page.getByTestId('header-manager').click();
    await info.waitFor({ timeout: 5_000 });
    const precision = await page.getByTestId('loaded-precision').textContent();
    assert(precision === 'bf16 with 8-bit (Q8_0) weights', `precision: ${precision}`);
    assert((await page.getByTestId('loaded-memory').textContent()) === '5.1 GB', 'quantized memory');
    const loads = (await page.evaluate(() => window.__mockCalls)).filter((c) => c.cmd === 'load_model');
    assert(loads.at(-1).args.quant === 'q8_0' && loads.at(-2).args.quant === 'none', `quant args: ${JSON.stringify(loads.map((c) => c.args.quant))}`);
    // The choice stays for the next load.
    assert((await page.getByTestId('load-quant').inputValue()) === 'q8_0', 'choice kept');
    await page.getByTestId('unload-model').click();
    await info.waitFor({ state: 'detached', timeout: 5_000 });

    await broken.getByTestId('remove-folder').click();
    await broken.waitFor({ state: 'detached', timeout: 5_000 });
    await page.getByTestId('close-manager').click();
    await page.getByTestId('model-manager').waitFor({ state: 'detached', timeout: 5_000 });
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });
}

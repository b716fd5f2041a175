// Browser tests of the chat (issue 5) against the mocked backend (e2e/mock-backend.ts): streaming,
// the grounding overlay's placement in pixels, stop, history and hostile answers.
import { assert, test } from './harness.mjs';

const CHAT = 'one-model';

/** Opens the chat with a loaded model and the 128×96 test image attached. */
async function ready(open, tokenMs) {
  const { page, errors } = await open(`${CHAT}&tokenMs=${tokenMs}`);
  await page.getByTestId('load-model').click();
  await page.getByTestId('loaded-model').waitFor({ timeout: 10_000 });
  const badge = await page.getByTestId('loaded-model').textContent();
  assert(badge.includes('Qwen/Qwen3-VL-2B-Instruct'), `loaded badge was ${badge}`);
  return { page, errors };
}

async function attachCat(page) {
  const path = page.getByTestId('attach-path');
  await path.fill('/home/ada/Pictures/cat.png');
  await path.press('Enter');
  const tokens = page.getByTestId('vision-tokens');
  await tokens.waitFor({ timeout: 5_000 });
  assert((await tokens.textContent()) === '12 tokens', 'vision tokens not shown');
}

async function ask(page, text) {
  await page.getByTestId('composer').fill(text);
  await page.getByTestId('composer').press('Enter');
}

const answer = (page) => page.locator('[data-testid="message"][data-role="assistant"]').last();

async function rect(locator) {
  const r = await locator.boundingBox();
  assert(r !== null, 'element has no box');
  return r;
}

function near(a, b, what, tol = 1.5) {
  assert(Math.abs(a - b) <= tol, `${what}: ${a} vs expected ${b}`);
}

export function chatTests(open) {
  test('send: the answer streams and the box is drawn on the image at the right pixels', async () => {
    const { page, errors } = await ready(open, 30);
    await attachCat(page);
    await ask(page, 'Where is the cat?');
    // The box appears while the answer is still streaming (the JSON closes mid-answer).
    await page.waitForFunction(
      () => {
        const m = [...document.querySelectorAll('[data-testid="message"][data-role="assistant"]')].at(-1);
        return m?.dataset.status === 'streaming' && m.querySelector('[data-testid="grounding-box"]') !== null;
      },
      null,
      { timeout: 10_000, polling: 'raf' },
    );
    await page.locator('[data-testid="message"][data-role="assistant"][data-status="complete"]').waitFor({ timeout: 10_000 });
    const text = await answer(page).locator('.answer').textContent();
    assert(text.includes('The cat is here:') && text.includes('Anything else?'), `answer text was ${text}`);

    // Copy: the code block copies exactly the model's code, the answer copies its source text.
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    await answer(page).locator('[data-copy-code]').click();
    const code = await page.evaluate(() => navigator.clipboard.readText());
    assert(code === '[\n  {"bbox_2d": [250, 312, 484, 625], "label": "cat"},\n  {"point_2d": [750, 500], "label": "eye"}\n]', `copied code ${JSON.stringify(code)}`);
    await answer(page).getByTestId('copy-answer').click();
    await page.waitForFunction(() => navigator.clipboard.readText().then((t) => t.startsWith('The cat is here:') && t.endsWith('Anything else?')), null, { timeout: 2_000 });

    const box = answer(page).getByTestId('grounding-box');
    assert((await box.count()) === 1, 'expected one box');
    assert((await box.getAttribute('data-bbox')) === '250,312,484,625', 'data-bbox');
    assert((await box.getAttribute('data-label')) === 'cat', 'data-label');
    const point = answer(page).getByTestId('grounding-point');
    assert((await point.getAttribute('data-point')) === '750,500', 'data-point');

    // The 128×96 image is fitted into the 20rem-high viewport: 320 px high, 426.67 px wide, centred.
    const img = await rect(answer(page).getByTestId('grounding-image'));
    const viewport = await rect(answer(page).locator('.viewport'));
    near(img.height, 320, 'image height');
    near(img.width, (320 * 128) / 96, 'image width');
    near(img.x - viewport.x, (viewport.width - img.width) / 2, 'letterbox offset');
    const b = await rect(box);
    near(b.x, img.x + 0.25 * img.width, 'box left');
    near(b.y, img.y + 0.312 * img.height, 'box top');
    near(b.width, 0.234 * img.width, 'box width');
    near(b.height, 0.313 * img.height, 'box height');
    // In image pixels: [32, 29.95, 61.95, 60] of 128×96, the red square of the test image.
    near(((b.x - img.x) / img.width) * 128, 32, 'box left in image px', 0.5);
    near(((b.y - img.y) / img.height) * 96, 29.95, 'box top in image px', 0.5);

    // Hovering the box highlights its text; hovering the text highlights the box.
    await box.hover();
    await answer(page).locator('.grounding-ref.active[data-grounding="box"][data-index="0"]').waitFor({ timeout: 2_000 });
    await answer(page).locator('.grounding-ref[data-grounding="point"]').hover();
    await answer(page).locator('[data-testid="grounding-point"].active').waitFor({ state: 'attached', timeout: 2_000 });

    // Zoomed in, the box still sits on the same image pixels.
    await answer(page).getByRole('button', { name: 'Zoom in' }).click();
    const zi = await rect(answer(page).getByTestId('grounding-image'));
    const zb = await rect(box);
    near(zi.width, img.width * 1.5, 'zoomed image width');
    near(zb.x, zi.x + 0.25 * zi.width, 'zoomed box left');
    near(zb.y, zi.y + 0.312 * zi.height, 'zoomed box top');
    // Wheel zoom about the cursor, then a drag pan: the box moves with the image.
    const vp = await rect(answer(page).locator('.viewport'));
    await page.mouse.move(vp.x + vp.width / 2, vp.y + vp.height / 2);
    await page.mouse.wheel(0, -300);
    await page.mouse.down();
    await page.mouse.move(vp.x + vp.width / 2 + 40, vp.y + vp.height / 2 + 25, { steps: 4 });
    await page.mouse.up();
    const wi = await rect(answer(page).getByTestId('grounding-image'));
    const wb = await rect(box);
    assert(wi.width > zi.width, `wheel did not zoom in: ${wi.width} <= ${zi.width}`);
    near(wb.x, wi.x + 0.25 * wi.width, 'wheel-zoomed box left');
    near(wb.height, 0.313 * wi.height, 'wheel-zoomed box height');
    await answer(page).getByTestId('reset-zoom').click();

    // A narrower window: the image is refitted and the box follows.
    await page.setViewportSize({ width: 640, height: 720 });
    await page.waitForFunction((w) => document.querySelector('[data-testid="grounding-image"]').getBoundingClientRect().width < w - 20, img.width, { timeout: 2_000 });
    const ri = await rect(answer(page).getByTestId('grounding-image'));
    near(ri.width / ri.height, 128 / 96, 'refitted aspect', 0.01);
    const rb = await rect(box);
    near(rb.x, ri.x + 0.25 * ri.width, 'resized box left');
    near(rb.width, 0.234 * ri.width, 'resized box width');
    await page.setViewportSize({ width: 1000, height: 720 });

    // The toggle hides and shows the marks.
    await answer(page).getByTestId('toggle-grounding').click();
    assert((await box.count()) === 0, 'box still shown after hiding');
    await answer(page).getByTestId('toggle-grounding').click();
    assert((await box.count()) === 1, 'box not shown again');
    await page.screenshot({ path: `${process.env.SHOTS}/browser-grounding.png` });
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('an image answer shows the image being read, then the prompt, then the answer with its time to first token', async () => {
    const { page, errors } = await ready(open, 60);
    await attachCat(page);
    // Every label the bar shows, with the answer's text length at that moment (the steps are
    // quicker than Playwright's polling, so a MutationObserver keeps them).
    await page.evaluate(() => {
      const seen = [];
      window.__prefillSeen = seen;
      new MutationObserver(() => {
        const label = document.querySelector('[data-testid="prefill-label"]')?.textContent;
        const text = [...document.querySelectorAll('[data-testid="message"][data-role="assistant"] .answer')].at(-1)?.textContent ?? '';
        if (label && seen.at(-1)?.label !== label) seen.push({ label, text: text.trim().length });
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await ask(page, 'Where is the cat?');
    const bar = page.getByTestId('prefill-progress');
    await answer(page).and(page.locator('[data-status="complete"]')).waitFor({ timeout: 10_000 });
    const seen = await page.evaluate(() => window.__prefillSeen);
    const labels = seen.map((s) => s.label);
    const want = [12, 25, 37, 50, 62, 75, 87, 100].map((p) => `Reading the image… ${p}%`).concat([25, 50, 75, 100].map((p) => `Reading the prompt… ${p}%`));
    assert(JSON.stringify(labels) === JSON.stringify(want), `labels ${JSON.stringify(labels)}`);
    assert(seen.every((s) => s.text === 0), 'answer text while the image was read');
    assert((await bar.count()) === 0, 'the progress bar stayed after the answer');
    const stats = answer(page).getByTestId('answer-stats');
    const line = await stats.textContent();
    assert(/ · first token \d+ ms · /.test(line), `stats line was ${line}`);
    assert(Number(await stats.getAttribute('data-first-token-ms')) >= 12 * 60, 'the first token came before the prefill ended');

    // Stop while the image is read: no text, marked stopped, the bar gone.
    await page.getByTestId('attach-path').fill('/home/ada/Pictures/cat.png');
    await page.getByTestId('attach-path').press('Enter');
    await page.locator('form').getByTestId('vision-tokens').waitFor({ timeout: 5_000 });
    await ask(page, 'Where is the cat now?');
    await page.waitForFunction(() => document.querySelector('[data-testid="prefill-progress"][data-stage="image"]') !== null, null, { timeout: 5_000, polling: 'raf' });
    await page.getByTestId('cancel-prefill').click();
    await answer(page).and(page.locator('[data-status="interrupted"]')).waitFor({ timeout: 5_000 });
    assert((await bar.count()) === 0, 'the progress bar stayed after stop');
    assert((await answer(page).locator('.answer').allTextContents()).join('').trim() === '', 'text after stop');
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('stop mid-stream keeps the partial answer, marked stopped', async () => {
    const { page, errors } = await ready(open, 80);
    await ask(page, 'Where is the cat?');
    await page.waitForFunction(
      () => ([...document.querySelectorAll('[data-testid="message"][data-role="assistant"] .answer')].at(-1)?.textContent ?? '').length > 8,
      null,
      { timeout: 10_000 },
    );
    await page.getByTestId('stop').click();
    await page.locator('[data-testid="message"][data-role="assistant"][data-status="interrupted"]').waitFor({ timeout: 5_000 });
    const partial = await answer(page).locator('.answer').textContent();
    await page.waitForTimeout(400);
    const later = await answer(page).locator('.answer').textContent();
    assert(partial.trim().length > 0 && partial === later, `partial answer changed: ${partial} -> ${later}`);
    assert(!later.includes('Anything else?'), 'the answer ran to its end');
    assert((await answer(page).getByTestId('status-badge').textContent()) === 'Stopped', 'no Stopped badge');
    await page.getByTestId('send').waitFor({ timeout: 2_000 });
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('history: the conversation is listed and reopens with its box', async () => {
    const { page, errors } = await ready(open, 5);
    await attachCat(page);
    await ask(page, 'Find the cat');
    await page.locator('[data-testid="message"][data-role="assistant"][data-status="complete"]').waitFor({ timeout: 10_000 });
    const entry = page.getByTestId('conversation');
    await entry.first().waitFor({ timeout: 5_000 });
    assert((await entry.first().textContent()).includes('Find the cat'), 'conversation title');

    await page.keyboard.press('Control+n');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="message"]').length === 0, null, { timeout: 5_000 });
    await entry.first().locator('button.title').click();
    await page.locator('[data-testid="message"][data-role="assistant"][data-status="complete"]').waitFor({ timeout: 5_000 });
    assert((await page.getByTestId('message').count()) === 2, 'expected the two stored messages');
    assert((await page.getByTestId('grounding-box').getAttribute('data-bbox')) === '250,312,484,625', 'stored box');

    await page.getByTestId('search-conversations').fill('zebra');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="conversation"]').length === 0, null, { timeout: 5_000 });
    await page.getByTestId('search-conversations').fill('cat');
    await entry.first().waitFor({ timeout: 5_000 });
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('a hostile answer runs no script and its link does not navigate', async () => {
    const { page } = await ready(open, 5);
    const url = page.url();
    await ask(page, 'xss please');
    await page.locator('[data-testid="message"][data-role="assistant"][data-status="complete"]').waitFor({ timeout: 10_000 });
    const body = answer(page).locator('.answer');
    assert((await body.locator('img, script, [onerror], [onclick], [href]').count()) === 0, 'active content in the answer');
    assert((await body.textContent()).includes('<script>'), 'the script tag is not shown as text');
    await body.locator('.external-link').click();
    const note = await answer(page).locator('.link-note code').textContent();
    assert(note === 'https://example.com/docs', `link note showed ${note}`);
    await page.waitForTimeout(200);
    const xss = await page.evaluate(() => window.__xss);
    assert(xss === undefined, `script ran: __xss = ${xss}`);
    assert(page.url() === url, `navigated to ${page.url()}`);
  });

  test('regenerate, edit-and-resend and Esc stop; settings go with each message', async () => {
    const { page, errors } = await ready(open, 25);
    await page.getByText('Settings').click();
    await page.getByTestId('setting-temperature').fill('0.3');
    await page.getByTestId('setting-max-pixels').fill('1003520');
    await page.getByTestId('setting-thinking').check();
    await ask(page, 'Where is the cat?');
    const sent = await page.evaluate(() => window.__mockCalls.filter((c) => c.cmd === 'send_message').map((c) => c.args.settings));
    assert(
      JSON.stringify(sent) === JSON.stringify([{ thinking: true, temperature: 0.3, maxNewTokens: 1024, maxPixels: 1003520 }]),
      `settings sent: ${JSON.stringify(sent)}`,
    );
    const done = page.locator('[data-testid="message"][data-role="assistant"][data-status="complete"]');
    await done.waitFor({ timeout: 10_000 });
    await page.getByTestId('regenerate').click();
    await done.waitFor({ timeout: 10_000 });
    assert((await page.getByTestId('message').count()) === 2, 'regenerate added messages');

    await page.getByTestId('edit').click();
    await page.getByRole('textbox', { name: 'Edit message' }).fill('Where is the dog?');
    await page.getByRole('button', { name: 'Save and resend' }).click();
    await done.waitFor({ timeout: 10_000 });
    const user = page.locator('[data-testid="message"][data-role="user"] .text');
    assert((await user.allTextContents()).join('|') === 'Where is the dog?', 'edited text');
    assert((await page.getByTestId('message').count()) === 2, 'edit did not truncate');

    // Esc in the composer stops a running answer.
    await page.getByTestId('regenerate').click();
    await page.locator('[data-testid="message"][data-role="assistant"][data-status="streaming"]').waitFor({ timeout: 5_000 });
    await page.getByTestId('composer').press('Escape');
    await page.locator('[data-testid="message"][data-role="assistant"][data-status="interrupted"]').waitFor({ timeout: 5_000 });
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('pasting an image from the clipboard attaches it; a bad path shows why', async () => {
    const { page, errors } = await ready(open, 5);
    // Shift+Enter is a newline, not a send.
    await page.getByTestId('composer').fill('first line');
    await page.getByTestId('composer').press('Shift+Enter');
    await page.getByTestId('composer').pressSequentially('second');
    assert((await page.getByTestId('composer').inputValue()) === 'first line\nsecond', 'Shift+Enter did not add a newline');
    assert((await page.getByTestId('message').count()) === 0, 'Shift+Enter sent the message');
    await page.getByTestId('composer').focus();
    await page.evaluate(() => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array([137, 80, 78, 71, 1, 2, 3])], 'shot.png', { type: 'image/png' }));
      document.querySelector('[data-testid="composer"]').dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
    });
    const thumb = page.getByTestId('attachment');
    await thumb.waitFor({ timeout: 5_000 });
    assert((await thumb.getAttribute('data-hash')) === 'pasted-7', 'the pasted bytes did not arrive');
    await page.getByRole('button', { name: 'Remove shot.png' }).click();
    assert((await thumb.count()) === 0, 'remove did not remove');

    await page.getByTestId('attach-path').fill('/home/ada/notes.txt');
    await page.getByTestId('attach-path').press('Enter');
    const err = page.getByTestId('attach-error');
    await err.waitFor({ timeout: 5_000 });
    assert((await err.getAttribute('data-kind')) === 'unsupportedFile', 'error kind');
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('export downloads the conversation; a file dropped on the window is attached', async () => {
    const { page, errors } = await ready(open, 5);
    await ask(page, 'Where is the cat?');
    await page.locator('[data-testid="message"][data-role="assistant"][data-status="complete"]').waitFor({ timeout: 10_000 });
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 5_000 }),
      page.getByRole('button', { name: 'Export as Markdown' }).click(),
    ]);
    assert(download.suggestedFilename() === 'Where is the cat_.md', `file name ${download.suggestedFilename()}`);

    await page.evaluate(() => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array([1, 2, 3])], 'dropped.png', { type: 'image/png' }));
      window.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
      window.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    });
    const thumb = page.getByTestId('attachment');
    await thumb.waitFor({ timeout: 5_000 });
    assert((await thumb.getAttribute('data-hash')) === 'pasted-3', 'the dropped file did not arrive');
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });
}

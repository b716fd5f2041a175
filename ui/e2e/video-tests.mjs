// Browser tests of video (issue 7) against the mocked backend: per-video settings with their live
// cost, extraction progress and cancel, the player's timeline, timestamp chips that seek it and
// preview on hover, "here" follow-ups, and a truncated video's error.
import { assert, test } from './harness.mjs';

async function ready(open, tokenMs = 10) {
  const { page, errors } = await open(`one-model&tokenMs=${tokenMs}`);
  await page.getByTestId('load-model').click();
  await page.getByTestId('loaded-model').waitFor({ timeout: 10_000 });
  return { page, errors };
}

async function attachClip(page, name = 'ball.mkv') {
  const path = page.getByTestId('attach-path');
  await path.fill(`/home/ada/Videos/${name}`);
  await path.press('Enter');
}

async function ask(page, text) {
  await page.getByTestId('composer').fill(text);
  await page.getByTestId('composer').press('Enter');
}

const calls = (page, cmd) => page.evaluate((c) => window.__mockCalls.filter((x) => x.cmd === c).map((x) => x.args), cmd);
const answer = (page) => page.locator('[data-testid="message"][data-role="assistant"]').last();
const cost = (page) => page.getByTestId('video-cost').getAttribute('data-tokens');

export function videoTests(open) {
  test('video settings: the cost follows fps, frame cap and range; a bad range blocks sending', async () => {
    const { page, errors } = await ready(open);
    await attachClip(page);
    await page.getByTestId('video-settings').waitFor({ timeout: 5_000 });
    await page.waitForFunction(() => document.querySelector('[data-testid="video-cost"]')?.dataset.frames === '20');
    assert((await cost(page)) === '160', `default cost ${await cost(page)}`);
    await page.getByTestId('video-fps').fill('4');
    await page.waitForFunction(() => document.querySelector('[data-testid="video-cost"]')?.dataset.frames === '40');
    await page.getByTestId('video-max-frames').fill('8');
    await page.waitForFunction(() => document.querySelector('[data-testid="video-cost"]')?.dataset.frames === '8');
    assert((await cost(page)) === '64', `capped cost ${await cost(page)}`);
    await page.getByTestId('video-max-frames').fill('');
    await page.getByTestId('video-start').fill('0:02');
    await page.getByTestId('video-end').fill('0:04.5');
    await page.waitForFunction(() => document.querySelector('[data-testid="video-cost"]')?.dataset.frames === '10');
    const last = (await calls(page, 'video_plan')).at(-1);
    assert(JSON.stringify(last.options) === JSON.stringify({ fps: 4, start: 2, end: 4.5 }), `plan options ${JSON.stringify(last.options)}`);

    await page.getByTestId('video-end').fill('0:01');
    const error = await page.getByTestId('video-settings-error').textContent();
    assert(error.includes('after the start'), `error was ${error}`);
    await page.getByTestId('composer').fill('When does the ball appear?');
    assert(await page.getByTestId('send').isDisabled(), 'send is enabled with a bad range');
    await page.getByTestId('video-end').fill('0:09');
    await page.getByTestId('send').click();
    await answer(page).and(page.locator('[data-status="complete"]')).waitFor({ timeout: 10_000 });
    const sent = (await calls(page, 'send_message')).at(-1);
    assert(
      JSON.stringify(sent.attachments) === JSON.stringify([{ hash: 'c1ip5eed', video: { fps: 4, start: 2, end: 9 } }]),
      `sent ${JSON.stringify(sent.attachments)}`,
    );
    // The player of the sent message marks the frames of that plan, inside the range.
    const marks = await page.locator('[data-testid="video-player"] [data-testid="frame-mark"]').evaluateAll((m) => m.map((e) => Number(e.dataset.seconds)));
    assert(marks.length === 28 && marks.every((t) => t >= 2 && t < 9), `marks ${JSON.stringify(marks)}`);
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('a video question: progress while frames are extracted, chips seek the player and preview on hover', async () => {
    const { page, errors } = await ready(open, 15);
    await attachClip(page);
    await page.getByTestId('video-cost').waitFor({ timeout: 5_000 });
    await ask(page, 'When does the ball appear?');
    await page.getByTestId('video-progress').waitFor({ timeout: 5_000 });
    const total = await page.getByTestId('video-progress').getAttribute('data-total');
    assert(total === '20', `progress total ${total}`);
    await answer(page).and(page.locator('[data-status="complete"]')).waitFor({ timeout: 10_000 });
    assert((await page.getByTestId('video-progress').count()) === 0, 'the progress bar stayed after the answer');

    const player = page.getByTestId('video-player');
    assert((await player.getAttribute('data-mode')) === 'scrubber', 'mkv should use the scrubber');
    assert((await player.locator('[data-testid="frame-mark"]').count()) === 20, 'frame marks');
    const chips = answer(page).getByTestId('timestamp');
    const seconds = await chips.evaluateAll((c) => c.map((e) => e.dataset.seconds));
    assert(JSON.stringify(seconds) === '["2.5","4"]', `chips ${JSON.stringify(seconds)}`);

    await chips.first().hover();
    const preview = page.getByTestId('timestamp-preview');
    await preview.locator('img').waitFor({ timeout: 5_000 });
    assert((await preview.getAttribute('data-seconds')) === '2.5', 'preview time');
    assert(decodeURIComponent(await preview.locator('img').getAttribute('src')).includes('t=2.5'), 'preview shows another frame');

    await chips.first().click();
    await page.waitForFunction(() => document.querySelector('[data-testid="video-player"]')?.dataset.currentTime === '2.50');
    await page.waitForFunction(() => decodeURIComponent(document.querySelector('[data-testid="scrubber-frame"]')?.getAttribute('src') ?? '').includes('t=2.5'));
    assert((await page.getByTestId('video-position').textContent()) === '0:02.5', 'position label');
    await chips.nth(1).click();
    await page.waitForFunction(() => document.querySelector('[data-testid="video-player"]')?.dataset.currentTime === '4.00');
    await page.screenshot({ path: `${process.env.SHOTS}/browser-video.png` });
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('a format the browser plays: the <video> element, seeked by chips and by the timeline', async () => {
    const { page, errors } = await ready(open);
    await attachClip(page, 'ball.webm');
    await page.getByTestId('video-cost').waitFor({ timeout: 5_000 });
    await ask(page, 'When does the ball appear?');
    await answer(page).and(page.locator('[data-status="complete"]')).waitFor({ timeout: 10_000 });
    const player = page.getByTestId('video-player');
    assert((await player.getAttribute('data-mode')) === 'native', `mode ${await player.getAttribute('data-mode')}`);
    const video = player.locator('video');
    await page.waitForFunction(() => document.querySelector('[data-testid="video-player"] video')?.readyState >= 1, null, { timeout: 10_000 });
    assert((await video.evaluate((v) => v.duration)) === 4, 'the clip plays from its file');
    await answer(page).getByTestId('timestamp').first().click();
    await page.waitForFunction(() => Math.abs(document.querySelector('[data-testid="video-player"] video').currentTime - 2.5) < 0.05);
    assert((await player.getAttribute('data-current-time')) === '2.50', 'player position');
    // Playback moves the position the player reports.
    await video.evaluate((v) => { v.muted = true; return v.play(); });
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="video-player"]').dataset.currentTime) > 2.7, null, { timeout: 5_000 });
    await video.evaluate((v) => v.pause());
    // The timeline seeks the element too.
    const box = await page.getByTestId('video-timeline').boundingBox();
    await page.mouse.click(box.x + box.width * 0.25, box.y + box.height / 2);
    await page.waitForFunction(() => Math.abs(document.querySelector('[data-testid="video-player"] video').currentTime - 1) < 0.05);
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('"here": a follow-up sends the player position and the frames around it', async () => {
    const { page } = await ready(open);
    await attachClip(page);
    await page.getByTestId('video-cost').waitFor({ timeout: 5_000 });
    await ask(page, 'When does the ball appear?');
    await answer(page).and(page.locator('[data-status="complete"]')).waitFor({ timeout: 10_000 });
    // Seek by clicking the timeline at 70 %.
    const track = page.getByTestId('video-timeline');
    const box = await track.boundingBox();
    await page.mouse.click(box.x + box.width * 0.7, box.y + box.height / 2);
    await page.waitForFunction(() => document.querySelector('[data-testid="video-player"]')?.dataset.currentTime === '7.00');
    assert((await page.getByTestId('here-time').textContent()) === '0:07.0', 'here label');
    await page.getByTestId('here').check();
    await ask(page, 'What is happening here?');
    await answer(page).and(page.locator('[data-status="complete"]')).waitFor({ timeout: 10_000 });
    const sent = (await calls(page, 'send_message')).at(-1);
    assert(JSON.stringify(sent.attachments) === JSON.stringify([{ hash: 'c1ip5eed', video: { here: 7 } }]), `sent ${JSON.stringify(sent.attachments)}`);
    // The follow-up shows its own player, planned over the window around 7 s.
    const players = page.getByTestId('video-player');
    assert((await players.count()) === 2, 'the follow-up has its own player');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="video-player"] [data-testid="video-frames"]').length === 2);
    const marks = await players.nth(1).locator('[data-testid="frame-mark"]').evaluateAll((m) => m.map((e) => Number(e.dataset.seconds)));
    assert(marks.length > 0 && marks.every((t) => t >= 4 && t <= 10), `here marks ${JSON.stringify(marks)}`);
    // Its chip seeks the follow-up's player, not the first one.
    await answer(page).getByTestId('timestamp').first().click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="video-player"]')[1]?.dataset.currentTime === '7.00');
    assert((await page.getByTestId('here').count()) === 1 && !(await page.getByTestId('here').isChecked()), 'here is reset after sending');
  });

  test('cancel stops frame extraction; the answer is marked stopped', async () => {
    const { page } = await ready(open, 60);
    await attachClip(page);
    await page.getByTestId('video-cost').waitFor({ timeout: 5_000 });
    await ask(page, 'When does the ball appear?');
    await page.getByTestId('video-progress').waitFor({ timeout: 5_000 });
    await page.getByTestId('cancel-extraction').click();
    await answer(page).and(page.locator('[data-status="interrupted"]')).waitFor({ timeout: 10_000 });
    assert((await page.getByTestId('video-progress').count()) === 0, 'the progress bar stayed');
    assert((await calls(page, 'cancel_generation')).length === 1, 'cancel_generation not called');
    assert((await answer(page).getByTestId('timestamp').count()) === 0, 'an answer arrived after cancel');
  });

  test('without a model the settings say the cost needs one, and show it once one loads', async () => {
    const { page, errors } = await open('one-model');
    await attachClip(page);
    const settings = page.getByTestId('video-settings');
    await settings.waitFor({ timeout: 5_000 });
    await page.getByText('Load a model to see what this costs').waitFor({ timeout: 5_000 });
    assert((await page.getByTestId('video-settings-error').count()) === 0, 'a missing model is not an error');
    await page.getByTestId('load-model').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="video-cost"]')?.dataset.frames === '20');
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  test('a truncated video is refused with a clear message', async () => {
    const { page, errors } = await ready(open);
    await attachClip(page, 'truncated.mp4');
    const error = page.getByTestId('attach-error');
    await error.waitFor({ timeout: 5_000 });
    assert((await error.getAttribute('data-kind')) === 'videoUnreadable', 'error kind');
    const text = await error.textContent();
    assert(text.includes('truncated.mp4') && text.includes('truncated'), `error was ${text}`);
    assert((await page.getByTestId('video-settings').count()) === 0, 'a refused video got settings');
    // Still usable: a good video attaches afterwards.
    await attachClip(page);
    await page.getByTestId('video-settings').waitFor({ timeout: 5_000 });
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });
}

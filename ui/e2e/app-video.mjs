// App end-to-end test of video (issue 7): the real app and engine with the tiny model the fixture
// script trained to answer "When does the ball appear?" about its clip. The answer's time becomes
// a chip; clicking it seeks the player there. A truncated copy of the clip is refused clearly.
//
//   APP_BIN=/abs/path/to/glimpse-app xvfb-run -a node e2e/app-video.mjs
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert, run, test } from './harness.mjs';
import {
  ENTER, FIXTURES, ask, attr, click, driverHooks, exec, find, findAll, installModel, lastAnswer, loadModel,
  screenshot, setInput, text, typeInto, until, withApp,
} from './webdriver.mjs';

const MODEL = 'video-ball';
// What the fixture script trained and recorded (tests/fixtures/reference/video-ball/answers.json).
const REFERENCE = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'video-ball', 'answers.json'), 'utf8'));
const QUESTION = REFERENCE.prompt;
const BALL = REFERENCE.cases.find((c) => !c.answer.startsWith('No'));
const clipPath = () => join(FIXTURES, BALL.video);

async function attach(driver, session, path) {
  const input = await until('the attach-path input', () => find(driver, session, '[data-testid="attach-path"]'));
  await typeInto(driver, session, input, path + ENTER);
}

/** The player's state as the page sees it. */
const playerState = (driver, session) =>
  exec(driver, session,
    `const p = document.querySelector('[data-testid="video-player"]');
     if (!p) return null;
     const v = p.querySelector('video');
     return { mode: p.dataset.mode, current: Number(p.dataset.currentTime),
              video: v ? { current: v.currentTime, ready: v.readyState } : null,
              marks: p.querySelectorAll('[data-testid="frame-mark"]').length };`);

test('the trained video model answers when the ball appears; its chip seeks the player; "here" sends the frames around it', async (driver) => {
  installModel(driver, MODEL);
  const clip = clipPath();
  await withApp(driver, async (session) => {
    await loadModel(driver, session, MODEL);
    await setInput(driver, session, 'setting-temperature', 'Temperature', '0');
    await attach(driver, session, clip);
    const cost = await until('the video cost', async () => {
      const el = await find(driver, session, '[data-testid="video-cost"]');
      return el && { tokens: Number(await attr(driver, session, el, 'data-tokens')), frames: Number(await attr(driver, session, el, 'data-frames')) };
    }, 60_000);
    assert(cost.tokens > 0 && cost.frames > 0, `cost ${JSON.stringify(cost)}`);

    await ask(driver, session, QUESTION);
    const answer = await until('a complete answer', async () => {
      const a = await lastAnswer(driver, session);
      return a && a.status !== 'streaming' ? a : null;
    }, 120_000);
    assert(answer.status === 'complete', `answer status ${answer.status}: ${answer.text}`);
    assert(answer.text.includes(BALL.answer), `the trained answer ${JSON.stringify(BALL.answer)} is not in: ${answer.text}`);

    const chips = await until('a timestamp chip in the answer', async () => {
      const a = await lastAnswer(driver, session);
      const found = [];
      for (const id of await findAll(driver, session, '[data-testid="message"][data-role="assistant"] [data-testid="timestamp"]')) {
        found.push({ id, seconds: Number(await attr(driver, session, id, 'data-seconds')), text: await text(driver, session, id) });
      }
      return found.length ? { answer: a, found } : null;
    });
    const chip = chips.found.at(-1);
    assert(chip.seconds === REFERENCE.ball_appears_seconds, `chip ${JSON.stringify(chip)} in: ${answer.text}`);
    // The chip stands for the time the answer says.
    assert(answer.text.includes(chip.text), `chip text ${chip.text} not in: ${answer.text}`);

    const before = await playerState(driver, session);
    assert(before && before.marks === cost.frames, `the player marks the ${cost.frames} frames: ${JSON.stringify(before)}`);
    assert(before.current === 0, `the player starts at 0: ${JSON.stringify(before)}`);
    await click(driver, session, chip.id);
    const after = await until(`the player at ${chip.seconds} s`, async () => {
      const s = await playerState(driver, session);
      return s && Math.abs(s.current - chip.seconds) < 0.011 ? s : null;
    });
    if (after.mode === 'native' && after.video.ready > 0) {
      assert(Math.abs(after.video.current - chip.seconds) < 0.05, `<video> currentTime ${after.video.current}`);
    }
    // The position shown under the player says the same.
    const label = await text(driver, session, await find(driver, session, '[data-testid="video-position"]'));
    assert(label.length > 0, 'no position label');
    await exec(driver, session, "document.querySelector('[data-testid=\"video-player\"]').scrollIntoView({block: 'center'})");
    await screenshot(driver, session, 'app-video.png');
    const still = await playerState(driver, session);
    assert(Math.abs(still.current - chip.seconds) < 0.011, `the player moved away from the chip's time: ${JSON.stringify(still)}`);
    console.log(`     answer: ${JSON.stringify(answer.text)}; chip ${chip.seconds} s; player ${after.mode} at ${after.current} s; ${cost.frames} frames, ${cost.tokens} tokens`);

    // "What happens here?": the follow-up sends the frames around the player position.
    const here = await until('the here box', () => find(driver, session, '[data-testid="here"]'));
    await click(driver, session, here);
    await ask(driver, session, 'What happens here?');
    await until('the follow-up answer', async () => {
      const all = await findAll(driver, session, '[data-testid="message"][data-role="assistant"]');
      return all.length === 2 && (await attr(driver, session, all[1], 'data-status')) !== 'streaming';
    }, 120_000);
    const around = await until('the follow-up player with its plan', () =>
      exec(driver, session,
        `const p = document.querySelectorAll('[data-testid="video-player"]')[1];
         if (!p || !p.querySelector('[data-testid="video-frames"]')) return null;
         return { caption: p.querySelector('figcaption').textContent,
                  marks: [...p.querySelectorAll('[data-testid="frame-mark"]')].map((m) => Number(m.dataset.seconds)) };`));
    // 3 s either side of 3.5 s, inside the 8 s clip.
    assert(around.caption.includes('asked about 0:03.5'), `caption: ${around.caption}`);
    assert(around.marks.length > 0 && around.marks.every((t) => t >= 0.5 && t < 6.5), `marks: ${JSON.stringify(around.marks)}`);
    console.log(`     here at 3.5 s: ${around.marks.length} frames from ${around.marks[0]} to ${around.marks.at(-1)} s`);
  });
});

// H.264 in MP4 and VP8 in WebM, 4 s each. WebKitGTK plays a format when GStreamer has its decoder
// and the webview can load the URL (on Linux it cannot load media from the asset protocol, tauri
// #3725), else the player notices the failure and scrubs over frames the backend decodes.
for (const clip of [join(FIXTURES, 'media', 'gop_64x48.mp4'), join(import.meta.dirname, 'ball.webm')]) {
  const kind = clip.slice(clip.lastIndexOf('.') + 1);
  test(`${kind}: the player plays it or falls back to decoded frames, and seeking works either way`, async (driver) => {
    installModel(driver, MODEL);
    await withApp(driver, async (session) => {
      await loadModel(driver, session, MODEL);
      await setInput(driver, session, 'setting-max-new-tokens', 'Max new tokens', '2');
      await attach(driver, session, clip);
      await until(`the ${kind} attached`, () => find(driver, session, '[data-testid="video-settings"]'), 30_000);
      await ask(driver, session, QUESTION);
      await until('the answer', async () => {
        const a = await lastAnswer(driver, session);
        return a && a.status !== 'streaming' ? a : null;
      }, 120_000);
      // Settled: playing natively with metadata, or switched to the scrubber.
      const settled = await until('the player to load or fall back', async () => {
        const s = await playerState(driver, session);
        return s && ((s.mode === 'native' && s.video.ready > 0) || s.mode === 'scrubber') ? s : null;
      });
      await click(driver, session, await find(driver, session, '[data-testid="video-timeline"]'));
      const after = await until('the player at the middle (2 s)', async () => {
        const s = await playerState(driver, session);
        return s && Math.abs(s.current - 2) < 0.1 ? s : null;
      });
      if (after.mode === 'native') assert(Math.abs(after.video.current - 2) < 0.1, `<video> at ${after.video.current}`);
      else {
        await until('the scrubber frame', () =>
          exec(driver, session,
            `const i = document.querySelector('[data-testid="scrubber-frame"]');
             return !!i && i.complete && i.naturalWidth > 0 && i.src.includes('-t2000.jpg');`));
      }
      console.log(`     ${kind} player: ${settled.mode}; seeked to ${after.current} s`);
    });
  });
}

test('a truncated video gives a clear message and the app keeps working', async (driver) => {
  const clip = clipPath();
  const dir = mkdtempSync(join(tmpdir(), 'glimpse-badvideo-'));
  const name = `truncated${clip.slice(clip.lastIndexOf('.'))}`;
  const broken = join(dir, name);
  const bytes = readFileSync(clip);
  writeFileSync(broken, bytes.subarray(0, Math.floor(bytes.length / 2)));
  try {
    await withApp(driver, async (session) => {
      await attach(driver, session, broken);
      const shown = await until(`an error naming ${name}`, async () => {
        for (const id of await findAll(driver, session, '[data-testid="attach-error"], [data-testid="error"]')) {
          const t = await text(driver, session, id);
          if (t.includes(name)) return t;
        }
        return null;
      });
      assert(/cannot/.test(shown), `error text: ${shown}`);
      assert(!(await find(driver, session, '[data-testid="video-settings"]')), 'the refused video was attached');
      // Still usable: the good clip attaches afterwards.
      await attach(driver, session, clip);
      await until('the good clip attached', () => find(driver, session, '[data-testid="video-settings"]'));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

await run(driverHooks);

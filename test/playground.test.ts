// The playground (/playground) in a real browser: Debian's chromium driven by playwright-core, against a real
// vidgate process with the simulated provider (real MP4s). The page is the one `npm run build:web` builds.
// Screenshots go to test-artifacts/playground/ (not committed).
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page, type Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPlayground } from '../web/build-playground';
import { tempDir } from './support/gateway';
import { hugePng, makeImage, oversizedPng } from './support/images';
import { startServerProcess, type ServerProcess } from './support/process';

const ADMIN = 'playground-test-admin-token-0123456789';
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.resolve('test-artifacts/playground');
/** The simulated job's length: long enough to cancel one while it runs, short enough to watch one finish. */
const JOB_MS = 3000;

let server: ServerProcess;
let dataDir: string;
let browser: Browser;
let page: Page;
let key: string;
let teamId: string;

async function admin(method: string, route: string, body?: object): Promise<any> {
  const res = await fetch(`${server.url}${route}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  expect(res.ok, `${method} ${route}: ${res.status}`).toBe(true);
  return res.json();
}

async function apiCall(method: string, route: string, body?: object): Promise<any> {
  const res = await fetch(`${server.url}${route}`, { method, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  expect(res.ok, `${method} ${route}: ${res.status}`).toBe(true);
  return res.json();
}

const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
const counts = () => page.getByTestId('history-counts');
const taskItem = (id: string) => page.locator(`[data-task-id="${id}"]`);
/** The id the page reports for the task it just submitted. */
async function submitted(): Promise<string> {
  const text = await page.getByTestId('generate-result').textContent({ timeout: 20_000 });
  const id = /Submitted (task_\w+)/.exec(text ?? '')?.[1];
  expect(id, text ?? '').toBeDefined();
  return id!;
}
/** The estimate once the page shows the one for these credits' request (it is debounced). */
async function shownEstimate(expected: { credits: number; usd: number }) {
  await expect.poll(() => page.getByTestId('estimate').getAttribute('aria-busy'), { timeout: 10_000 }).toBeNull();
  await expect.poll(() => page.getByTestId('estimate-credits').textContent(), { timeout: 10_000 }).toBe(`${expected.credits.toLocaleString('en')} credits`);
  expect(await page.getByTestId('estimate-usd').textContent()).toBe(`$${expected.usd.toFixed(2)}`);
}

beforeAll(async () => {
  expect(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (.ci/run does)`).toBe(true);
  await buildPlayground();
  fs.mkdirSync(SHOTS, { recursive: true });
  dataDir = tempDir();
  server = await startServerProcess({
    VIDGATE_DATA_DIR: dataDir,
    VIDGATE_SERVER__PORT: '0',
    VIDGATE_AUTH__API_KEYS: 'playground-bootstrap-key-0123456789',
    VIDGATE_ADMIN_TOKEN: ADMIN,
    VIDGATE_LOG_LEVEL: 'warn',
    VIDGATE_PROVIDERS: JSON.stringify([
      { id: 'simulated', kind: 'simulated', duration_ms: JOB_MS, fps: 4 },
      // A model with little on offer, whose every job is refused by the content policy.
      { id: 'strict', kind: 'simulated', duration_ms: 600, fps: 4, failure_rate: 1, failure_kind: 'terminal', models: [{ model: 'strict-model', usd_per_second: { standard: 0.05 }, durations_s: [4], image_input: false }] },
      // A model whose every job fails on the provider's side (retryable): the task fails with the provider's fault.
      { id: 'dead', kind: 'simulated', duration_ms: 300, fps: 4, failure_rate: 1, models: [{ model: 'dead-model', usd_per_second: { standard: 0.05 }, durations_s: [4], image_input: false }] },
    ]),
    VIDGATE_WORKERS__POLL_INTERVAL_MS: '100',
  });
  const team = await admin('POST', '/admin/teams', { name: 'studio' });
  teamId = team.id;
  key = (await admin('POST', `/admin/teams/${teamId}/keys`, { name: 'playground' })).key;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  server?.child.kill('SIGTERM');
  await server?.exited;
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('the playground', () => {
  /** Every request the page makes, to prove what it did not send. */
  const requests: { method: string; url: string; headers: Record<string, string> }[] = [];
  const pageErrors: string[] = [];
  /** Console errors about the page itself (a missing icon, a CSP refusal); refused API calls are expected ones. */
  const consoleErrors: string[] = [];
  const activeElementId = () => page.evaluate(() => (globalThis as any).document.activeElement?.id ?? null);
  const estimatePosts = () => requests.filter((r) => r.method === 'POST' && new URL(r.url).pathname === '/v1/estimates').length;

  it('is served offline-safe: built files only, a CSP of this origin, nothing loaded from elsewhere', async () => {
    page.on('request', (r) => requests.push({ method: r.method(), url: r.url(), headers: r.headers() }));
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && !/status of 4\d\d/.test(m.text()) && consoleErrors.push(m.text()));
    const res = await page.goto(`${server.url}/playground`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toMatch(/^default-src 'none'; script-src 'self'; style-src 'self';/);
    await page.getByLabel('API key').waitFor();
    expect(requests.every((r) => r.url.startsWith(server.url))).toBe(true);
    expect(requests.map((r) => new URL(r.url).pathname)).toEqual(expect.arrayContaining(['/playground', '/playground/app.js', '/playground/app.css']));
  });

  it('a wrong key says so at once; the right one shows its team, is kept for the session only and never put in a URL', async () => {
    await page.getByLabel('API key').fill('vg_not_a_key_at_all_0000000000');
    await page.getByRole('button', { name: 'Use this key' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/This API key was not accepted \(invalid API key\)/);
    await shot('01-wrong-key');

    const sentBefore = requests.length;
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Use this key' }).click();
    expect(await page.getByTestId('team-name').textContent()).toBe('studio');
    // Focus moves on to the first control of the generator, not back to <body>.
    await expect.poll(activeElementId).toBe('model');
    expect(await page.evaluate(() => ({ session: Object.values((globalThis as any).sessionStorage), local: Object.keys((globalThis as any).localStorage) }))).toEqual({ session: [key], local: [] });
    // A reload keeps the session's key: no second prompt.
    await page.reload();
    expect(await page.getByTestId('team-name').textContent({ timeout: 10_000 })).toBe('studio');
    expect(requests.some((r) => r.url.includes(key))).toBe(false);
    const calls = requests.slice(sentBefore).filter((r) => r.url.includes('/v1/'));
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.every((r) => r.headers.authorization === `Bearer ${key}`)).toBe(true);
    await shot('02-signed-in');
  });

  it('offers only what the model offers, and the estimate follows duration and quality and matches /v1/estimates', async () => {
    const models = (await apiCall('GET', '/v1/models')).data as { id: string; qualities: string[] }[];
    expect(models.find((m) => m.id === 'sora-2')?.qualities).toEqual(['720p']);
    await page.getByLabel('Model').selectOption('sora-2');
    await page.getByLabel('Prompt').fill('a paper boat on a rainy street');
    expect(await page.getByLabel('Quality').count()).toBe(0); // sora-2 has no 1080p
    expect(await page.locator('#prompt-count').textContent()).toBe('30 / 32,000 characters');

    const body = { model: 'sora-2-pro', prompt: 'a paper boat on a rainy street', aspect_ratio: '1280x720', duration: 4, cache: true };
    await page.getByLabel('Model').selectOption('sora-2-pro');
    const four = await apiCall('POST', '/v1/estimates', body);
    await shownEstimate(four);
    expect(await page.getByTestId('estimate-provider').textContent()).toBe(`Served by ${four.provider}.`);

    await page.getByLabel('8 s').check();
    const eight = await apiCall('POST', '/v1/estimates', { ...body, duration: 8 });
    expect(eight.credits).toBe(2 * four.credits);
    await shownEstimate(eight);

    await page.getByLabel('Quality').selectOption('1080p');
    expect(await page.getByTestId('size').textContent()).toBe('Size 1792 × 1024');
    const high = await apiCall('POST', '/v1/estimates', { ...body, duration: 8, aspect_ratio: '1792x1024' });
    expect(high.credits).toBeGreaterThan(eight.credits);
    await shownEstimate(high);
    await shot('03-estimate-1080p');

    // Back to sora-2: quality goes, and the size falls back to 720p.
    await page.getByLabel('Model').selectOption('sora-2');
    await expect.poll(() => page.getByTestId('size').textContent()).toBe('Size 1280 × 720');
    await page.getByLabel('4 s').check();
  });

  it('estimates as the user types, debounced, and as reads: typing cannot use up the submissions', async () => {
    await page.getByLabel('Prompt').fill('');
    await shownEstimate(await apiCall('POST', '/v1/estimates', { model: 'sora-2', prompt: 'estimate', aspect_ratio: '1280x720', duration: 4, cache: true }));
    const before = estimatePosts();
    const answered = page.waitForResponse((r) => r.url().endsWith('/v1/estimates') && r.request().postDataJSON().prompt === 'a heron in the reeds at dawn');
    await page.getByLabel('Prompt').pressSequentially('a heron in the reeds at dawn', { delay: 40 }); // 28 keys over about a second
    const last = await answered;
    expect(last.headers()['x-ratelimit-resource']).toBe('reads');
    await expect.poll(() => page.getByTestId('estimate').getAttribute('aria-busy')).toBeNull();
    expect(estimatePosts() - before).toBeLessThanOrEqual(3);
  });

  it('counts the prompt as the API does (code points), and over the limit shows no price but why', async () => {
    // 16 100 emoji: 32 200 UTF-16 units, but 16 100 characters for the API; its JSON (64 KB and more) is estimated.
    const emoji = '😀'.repeat(16_100);
    await page.getByLabel('Prompt').fill(emoji);
    expect(await page.locator('#prompt-count').textContent()).toBe('16,100 / 32,000 characters');
    await shownEstimate(await apiCall('POST', '/v1/estimates', { model: 'sora-2', prompt: emoji, aspect_ratio: '1280x720', duration: 4, cache: true }));
    expect(await page.getByRole('button', { name: 'Generate' }).isEnabled()).toBe(true);

    await page.getByLabel('Prompt').fill('a'.repeat(32_001));
    expect(await page.locator('#prompt-count').textContent()).toBe('32,001 / 32,000 characters: too long');
    await expect.poll(() => page.getByTestId('estimate-too-long').textContent()).toBe('No price: the prompt is too long (32,001 characters; at most 32,000).');
    expect(await page.getByTestId('estimate-credits').count()).toBe(0);
    expect(await page.getByTestId('estimate').getAttribute('aria-busy')).toBeNull();
    expect(await page.getByRole('button', { name: 'Generate' }).isDisabled()).toBe(true);
    await shot('03b-too-long');

    // An estimate refused (here: the team's reads used up) says why; the next prompt's estimate clears it.
    await admin('PATCH', `/admin/teams/${teamId}`, { quotas: { reads_per_minute: 1 } });
    for (let i = 0; i < 5 && !(await page.getByTestId('estimate-error').count()); i++) {
      await page.getByLabel('Prompt').fill(`a refused estimate ${i}`);
      await page.getByTestId('estimate-error').waitFor({ timeout: 2000 }).catch(() => undefined);
    }
    expect(await page.getByTestId('estimate-error').textContent()).toMatch(/^Too many requests: over 1 reads/);
    await admin('PATCH', `/admin/teams/${teamId}`, { quotas: { reads_per_minute: null } });
    await page.getByLabel('Prompt').fill('a paper boat on a rainy street');
    expect(await page.getByTestId('estimate-error').count()).toBe(0); // gone as soon as the prompt changed
    await shownEstimate(await apiCall('POST', '/v1/estimates', { model: 'sora-2', prompt: 'a paper boat on a rainy street', aspect_ratio: '1280x720', duration: 4, cache: true }));
  });

  it('takes an image by click or drop, shows its pixel size against the video, and refuses other files before uploading', async () => {
    const uploadsBefore = requests.filter((r) => r.method === 'POST' && r.url.endsWith('/v1/videos')).length;
    const input = page.getByLabel('Choose or drop a JPG, PNG or WebP image (up to 10 MB)');
    await input.setInputFiles({ name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('these are notes, not an image') });
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('notes.png is not a JPG, PNG or WebP image: choose one of those.');
    await shot('04-refused-file');
    await input.setInputFiles({ name: 'huge.png', mimeType: 'image/png', buffer: oversizedPng(10 * 1024 * 1024 + 1) });
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('huge.png is 10.0 MB: images may be at most 10 MB.');
    // Valid, small (about 110 KB), but 900 megapixels: refused for that, not as damaged.
    await input.setInputFiles({ name: 'vast.png', mimeType: 'image/png', buffer: hugePng(30000, 30000) });
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('vast.png has too many pixels (30000 × 30000): images may have at most 50 megapixels.');
    expect(requests.filter((r) => r.method === 'POST' && r.url.endsWith('/v1/videos')).length).toBe(uploadsBefore);
    // The native file input is out of sight (its "No file chosen" too), but still a labelled, focusable control.
    const box = await input.boundingBox();
    expect(box!.width * box!.height).toBeLessThanOrEqual(1);

    // Drag and drop: a real DataTransfer with a WebP file, dropped on the zone.
    const webp = makeImage('webp', 320, 240).toString('base64');
    const drop = await page.evaluateHandle((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new ((globalThis as any).DataTransfer)();
      dt.items.add(new File([bytes], 'dropped.webp', { type: 'image/webp' }));
      return dt;
    }, webp);
    await page.locator('label.drop').dispatchEvent('drop', { dataTransfer: drop });
    await expect.poll(() => page.getByTestId('image-size').textContent()).toBe('dropped.webp: 320 × 240 px; the video is 1280 × 720 px, another shape:');

    // By click (the file input): a PNG of the video's own shape.
    await input.setInputFiles({ name: 'boat.png', mimeType: 'image/png', buffer: makeImage('png', 640, 360) });
    await expect.poll(() => page.getByTestId('image-size').textContent()).toBe('boat.png: 640 × 360 px; the video is 1280 × 720 px (same shape).');
    expect(await page.getByRole('alert').count()).toBe(0);
    await page.getByLabel('Crop (fill the frame, cut the edges)').check();
    await shot('05-image');
  });

  // Callbacks run in the page reach its globals through `globalThis as any`: this project type-checks for Node,
  // without the DOM's types.
  let firstId: string;
  it('generates: the task enters the history at once, goes from running to completed, and its video plays and seeks', async () => {
    await page.getByRole('button', { name: 'Generate' }).click();
    firstId = await submitted();
    // In the history as soon as the answer came, running.
    expect(await taskItem(firstId).getAttribute('data-status')).toMatch(/^(pending|processing)$/);
    expect(await counts().textContent()).toBe('1 running · 0 completed');
    await shot('06-running');
    await expect.poll(() => counts().textContent(), { timeout: 60_000 }).toBe('0 running · 1 completed');
    const item = taskItem(firstId);
    expect(await item.getByTestId('task-price').textContent()).toBe('40 credits ($0.40)');
    expect(await item.locator('.meta').textContent()).toContain('with image · by simulated');
    expect(await item.getByTestId('task-prompt').textContent()).toBe('a paper boat on a rainy street');

    await item.getByRole('button', { name: 'Play video 1: a paper boat on a rainy street' }).click();
    const video = item.locator('video');
    await video.waitFor();
    await expect.poll(() => video.evaluate((v: any) => v.readyState), { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
    const facts = await video.evaluate((v: any) => ({ duration: v.duration, width: v.videoWidth, height: v.videoHeight, seekable: v.seekable.length ? v.seekable.end(0) : 0 }));
    expect(Math.abs(facts.duration - 4)).toBeLessThanOrEqual(0.5);
    expect([facts.width, facts.height]).toEqual([1280, 720]);
    expect(facts.seekable).toBeGreaterThan(3);
    const seeked = await video.evaluate(
      (v: any) => new Promise<number>((resolve) => {
        v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
        v.currentTime = 2.5;
      }),
    );
    expect(Math.abs(seeked - 2.5)).toBeLessThan(0.5);
    const played = await video.evaluate(async (v: any) => {
      v.muted = true;
      await v.play();
      await new Promise((r) => setTimeout(r, 400));
      return v.currentTime;
    });
    expect(played).toBeGreaterThan(2.5);
    await shot('07-completed-playing');

    const [download] = await Promise.all([page.waitForEvent('download'), item.getByRole('button', { name: 'Download' }).click()]);
    expect(download.suggestedFilename()).toBe(`${firstId}.mp4`);
    const file = await download.path();
    expect(fs.readFileSync(file).subarray(4, 8).toString()).toBe('ftyp');
  });

  it('says when the same request would come from the cache, and then shows the cache badge', async () => {
    // Same prompt, image bytes, size, duration and crop as the completed task.
    await expect.poll(() => page.getByTestId('estimate-provider').textContent(), { timeout: 10_000 }).toBe('Served from the cache: an identical video is stored.');
    expect(await page.getByTestId('estimate-credits').textContent()).toBe('0 credits');
    await shot('08-cache-estimate');
    await page.getByRole('button', { name: 'Generate' }).click();
    const hitId = await submitted();
    await expect.poll(() => taskItem(hitId).getByTestId('cache-badge').textContent(), { timeout: 10_000 }).toBe('cache hit');
    expect(await taskItem(hitId).getAttribute('data-status')).toBe('completed');
    await page.getByRole('button', { name: 'Remove the image' }).click();
  });

  it('explains a 429 with its wait, and cancels a running task', async () => {
    await admin('PATCH', `/admin/teams/${teamId}`, { quotas: { max_concurrent: 1 } });
    await page.getByLabel('Prompt').fill('a lighthouse in a storm, to be cancelled');
    await page.getByRole('button', { name: 'Generate' }).click();
    const id = await submitted();
    // A second one while it runs: over the team's one unfinished task.
    await page.getByLabel('Prompt').fill('a second lighthouse, one too many');
    await page.getByRole('button', { name: 'Generate' }).click();
    await expect.poll(() => page.getByTestId('generate-result').textContent(), { timeout: 10_000 }).toBe(
      "Too many requests: too many unfinished tasks: the team's max concurrent is 1 and 1 are used. Try again in 10 s.",
    );
    expect(await page.getByTestId('generate-result').getAttribute('role')).toBe('alert');
    expect(await taskItem(id).getAttribute('data-status')).toMatch(/^(pending|processing)$/);
    await expect.poll(() => page.getByTestId('estimate-provider').textContent(), { timeout: 10_000 }).toBe('Served by simulated.');
    expect(await page.getByTestId('estimate').getAttribute('aria-busy')).toBeNull();
    await shot('09-too-many');
    await admin('PATCH', `/admin/teams/${teamId}`, { quotas: { max_concurrent: null } });

    const cancel = taskItem(id).getByRole('button', { name: 'Cancel' });
    await cancel.click();
    await expect.poll(() => taskItem(id).getAttribute('data-status'), { timeout: 10_000 }).toBe('cancelled');
    expect(await taskItem(id).getByTestId('task-price').textContent()).toBe('0 credits ($0.00)');
    expect((await apiCall('GET', `/v1/tasks/${id}`)).status).toBe('cancelled');
    await shot('10-cancelled');
  });

  it('says before and on Generate that the budget is spent (402, with the wait)', async () => {
    const usage = await apiCall('GET', '/v1/usage');
    const used = usage.quotas.team.credits_per_day.used as number;
    await admin('PATCH', `/admin/teams/${teamId}`, { quotas: { credits_per_day: used + 10 } });
    await page.getByLabel('Prompt').fill('a city at night from a drone, over budget');
    await expect.poll(() => page.getByTestId('estimate-quota').textContent(), { timeout: 10_000 }).toBe("Not covered: 10 credits left in team's credits per day.");
    await page.getByRole('button', { name: 'Generate' }).click();
    const alert = page.getByTestId('generate-result');
    await expect.poll(() => alert.textContent(), { timeout: 10_000 }).toMatch(
      /^Over budget: not enough credits: the team's credits per day is \d+ and \d+ are used\. This request needs 40 credits \(\$0\.40\)\. Try again in \d+ (s|min|h)\.$/,
    );
    expect(await alert.getAttribute('role')).toBe('alert');
    await shot('11-over-budget');
    await admin('PATCH', `/admin/teams/${teamId}`, { quotas: { credits_per_day: null } });
  });

  it("a model's limits cannot be picked, and a refusal by the content policy is said in words", async () => {
    await page.getByLabel('Model').selectOption('strict-model');
    expect(await page.getByLabel('8 s').isDisabled()).toBe(true);
    expect(await page.getByLabel('12 s').isDisabled()).toBe(true);
    expect(await page.getByLabel('Choose or drop a JPG, PNG or WebP image (up to 10 MB)').isDisabled()).toBe(true);
    await page.getByLabel('Prompt').fill('something the provider refuses');
    await expect.poll(() => page.getByTestId('estimate-provider').textContent(), { timeout: 10_000 }).toBe('Served by strict.');
    await page.getByRole('button', { name: 'Generate' }).click();
    const id = await submitted();
    await expect.poll(() => taskItem(id).getAttribute('data-status'), { timeout: 30_000 }).toBe('failed');
    expect(await taskItem(id).getByTestId('task-error').textContent()).toBe("Refused by the provider's content policy: simulated content policy violation");
    // Its estimate no longer offers to follow it.
    await expect.poll(() => page.getByTestId('estimate-provider').textContent(), { timeout: 10_000 }).toBe('Served by strict.');
    await shot('12-content-policy');
    await page.getByLabel('Model').selectOption('sora-2');
  });

  it('the history holds the latest 20 tasks, survives a reload, and reads on a phone-sized window', async () => {
    // One generation, then 20 cache hits of it (completed at once): 23 tasks of the team in all.
    const request = { model: 'sora-2', prompt: 'a kite over a beach', aspect_ratio: '1280x720', duration: 4 };
    const generated = (await apiCall('POST', '/v1/videos/generations', request)).id as string;
    // An identical request while it runs follows it.
    const follower = (await apiCall('POST', '/v1/videos/generations', request)).id as string;
    await page.reload();
    await expect.poll(() => taskItem(follower).locator('.meta').textContent(), { timeout: 10_000 }).toContain('following an identical running generation');
    await expect.poll(async () => (await apiCall('GET', `/v1/tasks/${generated}`)).status, { timeout: 60_000 }).toBe('completed');
    const hits: string[] = [];
    for (let i = 0; i < 20; i++) hits.push((await apiCall('POST', '/v1/videos/generations', request)).id);
    await page.reload();
    await expect.poll(() => page.getByTestId('task').count(), { timeout: 10_000 }).toBe(20);
    expect(await counts().textContent()).toBe('0 running · 20 completed');
    const shown = await page.getByTestId('task').evaluateAll((items) => items.map((i) => i.getAttribute('data-task-id')));
    // The latest 20 (tasks made in one millisecond are ordered by id, so compared as sets); older ones are left out.
    expect(new Set(shown)).toEqual(new Set(hits));
    expect(await page.getByTestId('cache-badge').count()).toBe(20);
    // Twenty Play and Download buttons, each named after its own task.
    const names = await page.getByRole('button', { name: /^(Play|Download) video / }).evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label')));
    expect(names).toHaveLength(40);
    expect(new Set(names).size).toBe(40);
    expect(names).toContain('Play video 3: a kite over a beach');

    expect(await taskItem(hits[0]!).locator('.meta').textContent()).toBe('sora-2 · 1280 × 720 · 4 s · from the cache · 0 credits ($0.00)');
    await page.getByTestId('estimate-credits').waitFor();
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot('13-phone');
    expect(pageErrors).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(requests.some((r) => new URL(r.url).pathname === '/favicon.ico')).toBe(false);
  });

  it('can be used with the keyboard alone: each control is labelled and Tab follows the form', async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.getByLabel('Prompt').fill('a fox in the snow');
    await page.getByLabel('Model').focus();
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      order.push(await page.evaluate(() => {
        const el = (globalThis as any).document.activeElement;
        return el.labels?.[0]?.textContent?.trim() || el.getAttribute('aria-label') || el.textContent!.trim();
      }));
      await page.keyboard.press('Tab');
    }
    expect(order).toEqual(['Model', 'Prompt', 'Landscape (16:9)', '4 s', 'Choose or drop a JPG, PNG or WebP image (up to 10 MB)', 'Generate']);
  });

  it("a provider's own failure is said once, its code not repeated", async () => {
    const id = (await apiCall('POST', '/v1/videos/generations', { model: 'dead-model', prompt: 'a job the provider drops', duration: 4 })).id as string;
    await expect.poll(async () => (await apiCall('GET', `/v1/tasks/${id}`)).status, { timeout: 60_000 }).toBe('failed');
    const error = (await apiCall('GET', `/v1/tasks/${id}`)).error as { code: string; message: string };
    await page.reload();
    const shown = (await taskItem(id).getByTestId('task-error').textContent({ timeout: 10_000 }))!;
    expect(shown).toContain(error.code);
    expect(shown.split(error.code)).toHaveLength(2); // the code appears once
    await shot('13b-provider-failure');
  });

  it('a cancel that arrives after the task finished says so in words, and the row catches up', async () => {
    await page.getByLabel('Prompt').fill('a cancel that comes too late');
    await page.getByRole('button', { name: 'Generate' }).click();
    const id = await submitted();
    const cancel = taskItem(id).getByRole('button', { name: 'Cancel video 1: a cancel that comes too late' });
    await cancel.waitFor();
    // The page's polls are held back (not answered for it: let through later), so its row still offers Cancel.
    const held: Route[] = [];
    await page.route(/\/v1\/tasks\?limit=/, (route) => void held.push(route));
    await apiCall('POST', `/v1/tasks/${id}/cancel`); // finished elsewhere meanwhile: the page's cancel meets a real 409
    await cancel.click();
    await expect.poll(() => taskItem(id).getByRole('alert').textContent(), { timeout: 10_000 }).toBe('Too late to cancel: it had already finished.');
    for (const route of held.splice(0)) await route.continue();
    await page.unroute(/\/v1\/tasks\?limit=/);
    await expect.poll(() => taskItem(id).getAttribute('data-status'), { timeout: 10_000 }).toBe('cancelled');
    await shot('14-late-cancel');
  });

  it('a key revoked mid-session: polling stops, the key is forgotten, and the key form says why', async () => {
    // "Use another key" leads to the key field.
    await page.getByRole('button', { name: 'Use another key' }).click();
    await expect.poll(activeElementId).toBe('api-key');
    const created = await admin('POST', `/admin/teams/${teamId}/keys`, { name: 'short-lived' });
    await page.getByLabel('API key').fill(created.key);
    await page.getByRole('button', { name: 'Use this key' }).click();
    await expect.poll(activeElementId).toBe('model');

    await page.getByLabel('Prompt').fill('a long take that outlives its key');
    await page.getByRole('button', { name: 'Generate' }).click();
    const id = await submitted();
    expect(await taskItem(id).getAttribute('data-status')).toMatch(/^(pending|processing)$/);
    await admin('POST', `/admin/keys/${created.id}/revoke`);

    await expect.poll(() => page.getByRole('alert').textContent(), { timeout: 10_000 }).toBe('This key no longer works (this API key was revoked): enter another one.');
    await expect.poll(activeElementId).toBe('api-key');
    expect(await page.evaluate(() => Object.keys((globalThis as any).sessionStorage))).toEqual([]);
    expect(await page.getByTestId('task').count()).toBe(0); // no stale running task, no Cancel
    const polls = () => requests.filter((r) => new URL(r.url).pathname === '/v1/tasks').length;
    const after = polls();
    await page.waitForTimeout(2500); // more than two polling periods (1 s): none may follow
    expect(polls()).toBe(after);

    // On a phone, the key card keeps off the screen's edges.
    await page.setViewportSize({ width: 390, height: 844 });
    const card = (await page.locator('.key-form').boundingBox())!;
    expect(card.x).toBeGreaterThanOrEqual(8);
    expect(card.x + card.width).toBeLessThanOrEqual(390 - 8);
    await shot('15-key-revoked-phone');
  });
});

// Browser helpers for the end-to-end tests: Debian's Chromium through
// playwright-core (no browser download), screenshots on failure, a
// cross-origin media server (a WAV the <video> element can play and seek),
// and (VRIDGE_PAGE_FROM_DISK) the page's files from this tree.
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const RESULTS = join(here, '..', 'test-results');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/**
 * The server embeds the page's files at compile time. With
 * VRIDGE_PAGE_FROM_DISK=1 the browser gets `/assets/page/…` and
 * `/assets/src/…` from this tree instead (with the server's own headers,
 * CSP included), for testing the page against a binary built from another
 * checkout. scripts/js.sh builds the binary from this tree and leaves it unset.
 * @param {import('playwright-core').BrowserContext} ctx @param {string} base
 */
export async function pageFromDisk(ctx, base) {
  if (!process.env.VRIDGE_PAGE_FROM_DISK) return;
  await ctx.route(`${base}/assets/**`, async (route) => {
    const path = new URL(route.request().url()).pathname.replace(/^\/assets\//, '');
    if (!/^(page|src)\/[a-z]+\.(js|css)$/.test(path)) return route.continue();
    const response = await route.fetch();
    await route.fulfill({ response, status: 200, body: readFileSync(join(here, '..', path)) });
  });
}

export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** Saves a screenshot of every open page of `contexts` under test-results/. */
export async function screenshots(name, contexts) {
  mkdirSync(RESULTS, { recursive: true });
  const safe = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
  let i = 0;
  for (const ctx of contexts) {
    for (const page of ctx?.pages?.() ?? []) {
      const path = join(RESULTS, `${safe}-${i++}.png`);
      await page.screenshot({ path, fullPage: true }).catch(() => {});
      process.stderr.write(`screenshot: ${path}\n`);
    }
  }
}

/** Runs `fn`; on failure saves screenshots, then rethrows. */
export async function withShots(t, contexts, fn) {
  try {
    await fn();
  } catch (e) {
    await screenshots(t.name, contexts());
    throw e;
  }
}

/** Ten seconds of silence as a WAV: a media file Chromium plays and seeks. */
function silentWav(seconds = 10, rate = 8000) {
  const n = seconds * rate;
  const b = Buffer.alloc(44 + n, 0x80);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + n, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate, 28);
  b.writeUInt16LE(1, 32);
  b.writeUInt16LE(8, 34);
  b.write('data', 36);
  b.writeUInt32LE(n, 40);
  return b;
}

/** A media server on another origin (the page's CSP must allow it). */
export function mediaServer() {
  const wav = silentWav();
  const srv = createServer((req, res) => {
    const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Number(range[2]) : wav.length - 1;
      res.writeHead(206, {
        'content-type': 'audio/wav',
        'accept-ranges': 'bytes',
        'content-range': `bytes ${start}-${end}/${wav.length}`,
        'content-length': end - start + 1,
      });
      return res.end(wav.subarray(start, end + 1));
    }
    res.writeHead(200, { 'content-type': 'audio/wav', 'accept-ranges': 'bytes', 'content-length': wav.length });
    res.end(wav);
  });
  return new Promise((ok) =>
    srv.listen(0, '127.0.0.1', () => ok({ url: `http://127.0.0.1:${srv.address().port}/cut.wav`, close: () => srv.close() })),
  );
}

export const axeSource = () => readFileSync(join(here, '..', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

/** Runs axe-core in the page; returns the serious and critical violations. */
export async function axe(page) {
  // A string is evaluated through the DevTools protocol, which the page's
  // CSP does not govern (an added <script> would be refused, rightly).
  await page.evaluate(axeSource());
  return page.evaluate(async () => {
    const r = await globalThis.axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
}

/** Signs in through the page's form and waits for the project list. */
export async function signIn(page, base, user) {
  await page.goto(`${base}/`);
  await page.getByLabel('Email').first().fill(user.email);
  await page.getByLabel('Password', { exact: true }).fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Your projects' }).waitFor();
}

/** Opens a project and waits for a live socket. */
export async function openProject(page, base, projectId) {
  await page.goto(`${base}/#/p/${projectId}`);
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 15_000 });
}

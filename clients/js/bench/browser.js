// The browser-side numbers of BENCHMARKS.md: page load to a live socket,
// comment round trip in the browser, and the client library's memory for a
// project with 5,000 comments. Run (from clients/js, server binary built):
//   VRIDGE_BIN=<path to vridge-realtime> node --expose-gc bench/browser.js
import WebSocket from 'ws';
import { connect, MemoryOutbox } from '../src/index.js';
import { TestServer, until } from '../test/helpers/server.js';
import { launch, openProject, signIn } from '../e2e/helpers.js';

const LOADS = 20;
const ROUND_TRIPS = 100;
const COMMENTS = 5_000;

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const summary = (xs) => ({ p50: +pct(xs, 50).toFixed(1), p95: +pct(xs, 95).toFixed(1), max: +Math.max(...xs).toFixed(1), n: xs.length });

const server = await TestServer.start({ args: ['--no-rate-limits'] });
const browser = await launch();
try {
  const fx = await server.fixture({ editors: 1 });
  const ctxA = await browser.newContext();
  const ctxB = await browser.newContext();
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();
  await signIn(a, server.url, fx.editors[0]);
  await signIn(b, server.url, fx.owner);
  await openProject(b, server.url, fx.project.id);

  // 1. Navigation start to the first live socket (a mark the page sets).
  const loads = [];
  for (let i = 0; i < LOADS; i++) {
    await a.goto('about:blank');
    await openProject(a, server.url, fx.project.id);
    loads.push(await a.evaluate(() => performance.getEntriesByName('vridge:live')[0].startTime));
  }

  // 2. addComment() until its ack (A), and until B's page session holds it.
  const acks = [];
  const seen = [];
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const text = `round trip ${i}`;
    const waitB = b.evaluate(
      (t) =>
        new Promise((resolve) => {
          const s = window.vridgeSession;
          const off = s.on('comment', (c) => {
            if (c.text === t) {
              off();
              resolve(performance.timeOrigin + performance.now());
            }
          });
        }),
      text,
    );
    const [t0, t1] = await a.evaluate(async ({ t, f }) => {
      const start = performance.timeOrigin + performance.now();
      await window.vridgeSession.addComment({ feedback_id: f, text: t });
      return [start, performance.timeOrigin + performance.now()];
    }, { t: text, f: fx.feedback.id });
    acks.push(t1 - t0);
    seen.push((await waitB) - t0);
  }

  // 3. Memory of a session holding 5,000 comments (Node, --expose-gc).
  const writer = connect({ url: server.url, projectId: fx.project.id, getToken: () => fx.owner.access_token, WebSocket, outbox: new MemoryOutbox() });
  await until(() => writer.state === 'live', 10_000, 'writer live');
  const have = writer.comments.length;
  const posts = [];
  for (let i = have; i < COMMENTS; i++) {
    posts.push(writer.addComment({ feedback_id: fx.feedback.id, text: `Comment ${i}: the colour in the opening shot jumps between takes`, timestamp: i % 600 }));
    if (posts.length % 200 === 0) await Promise.all(posts.splice(0));
  }
  await Promise.all(posts);
  writer.close();
  const gc = globalThis.gc;
  if (!gc) throw new Error('run with node --expose-gc');
  gc();
  const before = process.memoryUsage().heapUsed;
  const started = performance.now();
  const reader = connect({ url: server.url, projectId: fx.project.id, getToken: () => fx.owner.access_token, WebSocket, outbox: new MemoryOutbox() });
  await until(() => reader.state === 'live' && reader.comments.length >= COMMENTS, 60_000, 'the reader to hold every comment');
  const syncMs = performance.now() - started;
  gc();
  const heldBytes = process.memoryUsage().heapUsed - before;
  const held = reader.comments.length;
  reader.close();

  const result = {
    page_load_to_live_ms: summary(loads),
    comment_ack_ms: summary(acks),
    comment_seen_by_other_page_ms: summary(seen),
    memory: { comments: held, heap_bytes: heldBytes, bytes_per_comment: Math.round(heldBytes / held), full_sync_ms: Math.round(syncMs) },
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await browser.close();
  await server.destroy();
}

// The client's logic against a fake socket: protocol paths the server does
// not produce on demand (token_expiring, a named comment error, resync, a
// broken prev_id chain), the backoff schedule and the typing budget.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay, connect, MemoryOutbox, TypingThrottle } from '../src/index.js';

class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    this.url = new URL(url);
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  /** server side */
  receive(msg) {
    this.readyState = 1;
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(code) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
  static last() {
    return FakeSocket.all.at(-1);
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const settle = async () => {
  for (let i = 0; i < 5; i++) await tick();
};
const comment = (id, prev) => ({ id, prev_id: prev, project_id: 7, feedback_id: 1, user_id: 3, text: `c${id}`, created: '' });
const initial = (comments, extra = {}) => ({ type: 'initial_state', project_id: 7, comments, online_users: [3], last_comment_id: comments.at(-1)?.id ?? null, ...extra });

async function session(extra = {}) {
  FakeSocket.all = [];
  const tokens = [];
  const s = connect({
    url: 'http://example.test',
    projectId: 7,
    getToken: ({ fresh }) => {
      tokens.push(fresh);
      return fresh ? 'fresh-token' : 'old-token';
    },
    WebSocket: FakeSocket,
    outbox: new MemoryOutbox(),
    backoff: { baseMs: 1, maxMs: 2 },
    ...extra,
  });
  await s.ready;
  await settle();
  return { s, tokens };
}

test('the first connect asks for the whole history, a reconnect for what is newer', async () => {
  const { s } = await session();
  const first = FakeSocket.last();
  assert.equal(first.url.pathname, '/ws/feedback/7');
  assert.equal(first.url.protocol, 'ws:');
  assert.equal(first.url.searchParams.get('since'), '0');
  first.receive(initial([comment(1, null), comment(2, 1)]));
  assert.equal(s.state, 'live');
  first.drop(1006);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeSocket.last().url.searchParams.get('since'), '2');
  s.close();
});

test('a prev_id that does not chain resumes from the newest id held; nothing is shown twice', async () => {
  const { s } = await session();
  FakeSocket.last().receive(initial([comment(1, null), comment(2, 1)]));
  const gaps = [];
  s.on('gap', (g) => gaps.push(g));
  FakeSocket.last().receive({ type: 'comment', comment: comment(4, 3) });
  assert.deepEqual(gaps, [{ expected: 2, prev_id: 3, id: 4 }]);
  await settle();
  const resumed = FakeSocket.last();
  assert.equal(resumed.url.searchParams.get('since'), '2');
  resumed.receive(initial([comment(3, 2), comment(4, 3)], { resumed_from: 2, resume_complete: true }));
  resumed.receive({ type: 'comment', comment: comment(4, 3) });
  resumed.receive({ type: 'batch', messages: [{ type: 'comment', comment: comment(5, 4) }] });
  assert.deepEqual(s.comments.map((c) => c.id), [1, 2, 3, 4, 5]);
  s.close();
});

test('resync and an incomplete resume both resume again', async () => {
  const { s } = await session();
  FakeSocket.last().receive(initial([comment(1, null)], { resume_complete: false }));
  await settle();
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(FakeSocket.last().url.searchParams.get('since'), '1');
  FakeSocket.last().receive(initial([comment(2, 1)], { resumed_from: 1, resume_complete: true }));
  assert.equal(s.state, 'live');
  FakeSocket.last().receive({ type: 'resync', reason: 'test' });
  await settle();
  assert.equal(FakeSocket.all.length, 3);
  assert.equal(FakeSocket.last().url.searchParams.get('since'), '2');
  s.close();
});

test('token_expiring: a fresh token is sent on the same socket', async () => {
  const { s, tokens } = await session();
  const ws = FakeSocket.last();
  ws.receive(initial([]));
  ws.receive({ type: 'token_expiring', expires_at: 1 });
  await settle();
  assert.deepEqual(tokens, [false, true]);
  assert.deepEqual(ws.sent.at(-1), { type: 'refresh_token', token: 'fresh-token' });
  assert.equal(FakeSocket.all.length, 1, 'no reconnect');
  const refreshed = [];
  s.on('token_refreshed', (m) => refreshed.push(m.expires_at));
  ws.receive({ type: 'token_refreshed', expires_at: 99 });
  assert.deepEqual(refreshed, [99]);
  s.close();
});

test('4002 reconnects with a fresh token; 4001 and 4003 stop', async () => {
  const { s, tokens } = await session();
  FakeSocket.last().drop(4002);
  await settle();
  assert.deepEqual(tokens, [false, true]);
  assert.equal(FakeSocket.all.length, 2);
  FakeSocket.last().drop(4003);
  assert.equal(s.state, 'stopped');
  assert.equal(s.reason, 'forbidden');
  const other = await session();
  FakeSocket.last().drop(4001);
  assert.equal(other.s.reason, 'unauthenticated');
});

test('a fresh token refused again (4002 twice) backs off instead of looping', async () => {
  const { s, tokens } = await session({ backoff: { baseMs: 80, maxMs: 80 } });
  FakeSocket.last().drop(4002);
  await settle();
  assert.equal(FakeSocket.all.length, 2);
  FakeSocket.last().drop(4002);
  await settle();
  assert.equal(FakeSocket.all.length, 2, 'not at once');
  assert.equal(s.state, 'reconnecting');
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(FakeSocket.all.length, 3);
  assert.deepEqual(tokens, [false, true, true]);
  s.close();
});

test('1001, 4008 and 4009 reconnect', async () => {
  const { s } = await session();
  for (const code of [1001, 4008, 4009]) {
    const before = FakeSocket.all.length;
    FakeSocket.last().drop(code);
    assert.equal(s.state, 'reconnecting');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(FakeSocket.all.length, before + 1, `after ${code}`);
  }
  s.close();
});

test('a named comment error rejects its promise; only retryable ones stay in the outbox', async () => {
  const { s } = await session();
  const ws = FakeSocket.last();
  ws.receive(initial([]));
  const bad = s.addComment({ feedback_id: 1, text: 'bad' });
  const later = s.addComment({ feedback_id: 1, text: 'later' });
  await settle();
  const [m1, m2] = ws.sent.filter((m) => m.type === 'comment_add').map((m) => m.client_msg_id);
  ws.receive({ type: 'error', message: 'Invalid comment data', client_msg_id: m1 });
  await assert.rejects(bad, (e) => e.retryable === false && e.message === 'Invalid comment data');
  ws.receive({ type: 'error', message: 'Comment could not be stored, please retry', client_msg_id: m2 });
  await assert.rejects(later, (e) => e.retryable === true);
  assert.deepEqual(s.waiting.map((w) => w.client_msg_id), [m2]);
  // Sent again (same id) and acknowledged.
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(ws.sent.filter((m) => m.client_msg_id === m2).length, 2);
  ws.receive({ type: 'comment_ack', client_msg_id: m2, comment_id: 1, duplicate: false, comment: comment(1, null) });
  assert.equal(s.waiting.length, 0);
  assert.deepEqual(s.comments.map((c) => c.id), [1]);
  s.close();
});

test('text outside 1..=10000 characters is refused before sending', async () => {
  const { s } = await session();
  await assert.rejects(s.addComment({ feedback_id: 1, text: '' }), /Invalid comment data/);
  await assert.rejects(s.addComment({ feedback_id: 1, text: 'x'.repeat(10_001) }), /Invalid comment data/);
  s.close();
});

test('backoff grows, is capped and jittered', () => {
  assert.equal(backoffDelay(0, { baseMs: 100, random: () => 0 }), 50);
  assert.equal(backoffDelay(0, { baseMs: 100, random: () => 1 }), 100);
  assert.equal(backoffDelay(3, { baseMs: 100, random: () => 1 }), 800);
  assert.equal(backoffDelay(50, { baseMs: 100, maxMs: 5000, random: () => 1 }), 5000);
  assert.ok(backoffDelay(50, { baseMs: 100, maxMs: 5000, random: () => 0 }) >= 2500);
});

test('typing stays inside the server quota of 30 a minute under constant typing', () => {
  let now = 0;
  const sent = [];
  const t = new TypingThrottle((v) => (sent.push([now, v]), true), { now: () => now });
  // A keystroke every 100 ms with a blur every 2 s, for five minutes.
  for (now = 0; now < 300_000; now += 100) {
    t.set(true);
    if (now % 2000 === 1900) t.set(false);
  }
  for (let start = 0; start < 300_000; start += 1000) {
    const inWindow = sent.filter(([at]) => at >= start && at < start + 60_000).length;
    assert.ok(inWindow <= 30, `${inWindow} typing messages in the minute from ${start} ms`);
  }
  // Refreshed often enough that the server's 10 s lapse never shows.
  const trues = sent.filter(([, v]) => v).map(([at]) => at);
  assert.ok(trues.length >= 60);
});

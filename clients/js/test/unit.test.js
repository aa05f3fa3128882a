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

/**
 * A server without the event log: the history by comment id, then the plain
 * connect the session makes to learn `last_seq`, answered without it.
 */
async function noLog(comments, extra = {}) {
  FakeSocket.last().receive(initial(comments, { resumed_from: 0, resume_complete: true, ...extra }));
  await settle();
  const probe = FakeSocket.last();
  assert.ok(!probe.url.searchParams.has('since') && !probe.url.searchParams.has('since_seq'), `a plain connect: ${probe.url}`);
  probe.receive(initial(comments.slice(-20)));
}

test('the first connect asks for the whole history, a reconnect for what is newer', async () => {
  const { s } = await session();
  const first = FakeSocket.last();
  assert.equal(first.url.pathname, '/ws/feedback/7');
  assert.equal(first.url.protocol, 'ws:');
  assert.equal(first.url.searchParams.get('since'), '0');
  await noLog([comment(1, null), comment(2, 1)]);
  assert.equal(s.state, 'live');
  FakeSocket.last().drop(1006);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeSocket.last().url.searchParams.get('since'), '2');
  assert.equal(FakeSocket.all.length, 3, 'the server has no log: no second plain connect');
  FakeSocket.last().receive(initial([], { resumed_from: 2, resume_complete: true }));
  assert.equal(s.state, 'live');
  s.close();
});

test('a history without last_seq: a plain connect learns it, and every later connect resumes by seq', async () => {
  const { s } = await session();
  FakeSocket.last().receive(initial([comment(1, null), comment(2, 1)], { resumed_from: 0, resume_complete: true }));
  await settle();
  const probe = FakeSocket.last();
  assert.deepEqual([probe.url.searchParams.has('since'), probe.url.searchParams.has('since_seq')], [false, false]);
  assert.notEqual(s.state, 'live');
  probe.receive(initial([comment(1, null), { ...comment(2, 1), reactions: [{ emoji: '👍', count: 1 }] }], { last_seq: 9 }));
  assert.equal(s.state, 'live');
  assert.equal(s.lastSeq, 9);
  assert.deepEqual(s.byId.get(2).reactions, [{ emoji: '👍', count: 1 }], 'the newest comments as of last_seq');
  probe.drop(1006);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeSocket.last().url.searchParams.get('since_seq'), '9');
  s.close();
});

test('a prev_id that does not chain resumes from the newest id held; nothing is shown twice', async () => {
  const { s } = await session();
  await noLog([comment(1, null), comment(2, 1)]);
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
  await noLog([comment(2, 1)], { resumed_from: 1 });
  assert.equal(s.state, 'live');
  FakeSocket.last().receive({ type: 'resync', reason: 'test' });
  await settle();
  assert.equal(FakeSocket.all.length, 4);
  assert.equal(FakeSocket.last().url.searchParams.get('since'), '2');
  s.close();
});

test('token_expiring: a fresh token is sent on the same socket', async () => {
  const { s, tokens } = await session();
  const ws = FakeSocket.last();
  ws.receive(initial([], { last_seq: 0 }));
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
  ws.receive(initial([], { last_seq: 0 }));
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

// ---- the event log and the comment model ------------------------------------

const meta = (seq) => ({ seq, prev_seq: seq - 1, actor_id: 3, at: '2026-12-04T00:00:00Z' });
const ev = {
  add: (seq, c) => ({ type: 'comment', comment: c, user_id: c.user_id, event: meta(seq) }),
  edited: (seq, c) => ({ type: 'comment_edited', comment: { ...c, edited_at: 'now' }, user_id: c.user_id, event: meta(seq) }),
  deleted: (seq, c) => ({ type: 'comment_deleted', comment: { ...c, text: '', title: null, section: null, security: null, deleted_at: 'now' }, user_id: c.user_id, event: meta(seq) }),
  resolved: (seq, c) => ({ type: 'comment_resolved', comment: { ...c, resolved_at: 'now', resolved_by: 5 }, user_id: 5, event: meta(seq) }),
  reopened: (seq, c) => ({ type: 'comment_reopened', comment: { ...c }, user_id: 5, event: meta(seq) }),
  react: (seq, commentId, userId, emoji = '👍') => ({ type: 'reaction', reaction: { comment_id: commentId, user_id: userId, emoji, created: '' }, user_id: userId, event: meta(seq) }),
  unreact: (seq, commentId, userId, emoji = '👍') => ({ type: 'reaction_removed', reaction: { comment_id: commentId, user_id: userId, emoji, created: '' }, user_id: userId, event: meta(seq) }),
  status: (seq, status) => ({ type: 'status_changed', feedback_id: 1, status, priority: 'high', user_id: 3, event: meta(seq) }),
};
const since = (ws) => Object.fromEntries(['since', 'since_seq'].map((k) => [k, ws.url.searchParams.get(k)]));
const reply = (id, prev, parent) => ({ ...comment(id, prev), parent_id: parent });

test('the seq of initial_state and of every live event is the next resume\'s since_seq', async () => {
  const { s } = await session();
  assert.deepEqual(since(FakeSocket.last()), { since: '0', since_seq: null }, 'nothing known: the whole history by id');
  FakeSocket.last().receive(initial([comment(1, null)], { resumed_from: 0, resume_complete: true, last_seq: 4 }));
  assert.equal(s.lastSeq, 4);
  FakeSocket.last().receive({ type: 'batch', messages: [ev.add(5, comment(2, 1)), ev.status(6, 'closed')] });
  assert.equal(s.lastSeq, 6);
  FakeSocket.last().drop(1006);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(since(FakeSocket.last()), { since: null, since_seq: '6' });
  s.close();
});

test('a resume by seq applies the missed events in order: edit, delete, resolve, reactions', async () => {
  const { s } = await session({ userId: 3 });
  const c1 = comment(1, null);
  const c2 = comment(2, 1);
  FakeSocket.last().receive(initial([c1, { ...c2, reactions: [{ emoji: '👍', count: 2 }] }], { resumed_from: 0, resume_complete: true, last_seq: 10 }));
  const seen = [];
  s.on('change', (m) => seen.push(m.type));
  FakeSocket.last().drop(1006);
  await new Promise((r) => setTimeout(r, 20));
  const ws = FakeSocket.last();
  assert.equal(since(ws).since_seq, '10');
  ws.receive({
    type: 'initial_state', project_id: 7, comments: [], online_users: [], last_comment_id: null,
    resumed_from_seq: 10, resume_complete: true, last_seq: 17,
    events: [
      ev.edited(11, { ...c1, text: 'new text' }),
      ev.deleted(12, c2),
      ev.react(13, 1, 3),
      ev.unreact(14, 2, 9),
      ev.resolved(15, { ...c1, text: 'new text', edited_at: 'now' }),
      ev.add(16, reply(3, 2, 1)),
      ev.status(17, 'closed'),
    ],
  });
  assert.equal(s.state, 'live');
  assert.equal(s.lastSeq, 17);
  assert.deepEqual(seen, ['comment_edited', 'comment_deleted', 'reaction', 'reaction_removed', 'comment_resolved', 'comment', 'status_changed']);
  const one = s.byId.get(1);
  assert.equal(one.text, 'new text');
  assert.equal(one.edited_at, 'now');
  assert.equal(one.resolved_by, 5);
  assert.equal(one.reply_count, 1);
  assert.deepEqual(s.reactionsOf(1), [{ emoji: '👍', count: 1, mine: true }]);
  const two = s.byId.get(2);
  assert.equal(two.text, '');
  assert.ok(two.deleted_at);
  assert.deepEqual(two.reactions, [{ emoji: '👍', count: 1 }], 'counts survive the tombstone');
  assert.deepEqual(s.repliesOf(1).map((c) => c.id), [3]);
  assert.deepEqual(s.comments.map((c) => c.id), [1, 2, 3]);
  // The same events again (a server that resumed from further back) change nothing.
  ws.receive(ev.react(13, 1, 3));
  ws.receive(ev.add(16, reply(3, 2, 1)));
  assert.equal(s.byId.get(1).reply_count, 1);
  assert.deepEqual(s.reactionsOf(1), [{ emoji: '👍', count: 1, mine: true }]);
  s.close();
});

test('an event whose prev_seq is ahead of the newest seq held resumes by seq; nothing applies twice', async () => {
  const { s } = await session();
  FakeSocket.last().receive(initial([comment(1, null)], { resumed_from: 0, resume_complete: true, last_seq: 3 }));
  const gaps = [];
  s.on('gap', (g) => gaps.push(g));
  FakeSocket.last().receive(ev.react(5, 1, 4));
  assert.deepEqual(gaps, [{ expected_seq: 3, prev_seq: 4, seq: 5 }]);
  assert.deepEqual(s.byId.get(1).reactions, [], 'the event after the gap is not applied out of order');
  await settle();
  const ws = FakeSocket.last();
  assert.equal(since(ws).since_seq, '3');
  ws.receive({
    type: 'initial_state', project_id: 7, comments: [], online_users: [], last_comment_id: null,
    resumed_from_seq: 3, resume_complete: true, last_seq: 5,
    events: [ev.react(4, 1, 8), ev.react(5, 1, 4)],
  });
  ws.receive(ev.react(5, 1, 4));
  assert.deepEqual(s.byId.get(1).reactions, [{ emoji: '👍', count: 2 }]);
  assert.equal(s.lastSeq, 5);
  s.close();
});

test('resync and an incomplete resume by seq both resume from the newest seq held', async () => {
  const { s } = await session();
  FakeSocket.last().receive(initial([comment(1, null)], { resumed_from: 0, resume_complete: true, last_seq: 1 }));
  FakeSocket.last().receive({ type: 'resync', reason: 'broker lagged' });
  await settle();
  assert.equal(since(FakeSocket.last()).since_seq, '1');
  FakeSocket.last().receive({
    type: 'initial_state', project_id: 7, comments: [], online_users: [], last_comment_id: null,
    resumed_from_seq: 1, resume_complete: false, last_seq: 3, events: [ev.add(2, comment(2, 1)), ev.add(3, comment(3, 2))],
  });
  await settle();
  assert.equal(s.state, 'reconnecting');
  assert.equal(since(FakeSocket.last()).since_seq, '3');
  FakeSocket.last().receive({
    type: 'initial_state', project_id: 7, comments: [], online_users: [], last_comment_id: null,
    resumed_from_seq: 3, resume_complete: true, last_seq: 4, events: [ev.add(4, comment(4, 3))],
  });
  assert.equal(s.state, 'live');
  assert.deepEqual(s.comments.map((c) => c.id), [1, 2, 3, 4]);
  s.close();
});

test('a history paged by id resumes by seq from its earliest page, counting nothing twice', async () => {
  const { s } = await session();
  // Page 1 is read as of seq 10. Before page 2 is read (as of seq 14):
  // comment 3 (seq 11), a reply to comment 1 (4, seq 12), a reply to 3
  // (5, seq 13) and a reaction to 3 (seq 14).
  FakeSocket.last().receive(initial([comment(1, null), comment(2, 1)], { resumed_from: 0, resume_complete: false, last_seq: 10 }));
  await settle();
  assert.deepEqual(since(FakeSocket.last()), { since: '2', since_seq: null });
  const page2 = [{ ...comment(3, 2), reply_count: 1, reactions: [{ emoji: '🎬', count: 1 }] }, reply(4, 3, 1), reply(5, 4, 3)];
  FakeSocket.last().receive(initial(page2, { resumed_from: 2, resume_complete: true, last_seq: 14 }));
  await settle();
  // Comment 1 is as of seq 10 only: its reply is not in its count yet.
  assert.deepEqual(since(FakeSocket.last()), { since: null, since_seq: '10' });
  FakeSocket.last().receive({
    type: 'initial_state', project_id: 7, comments: [], online_users: [], last_comment_id: null,
    resumed_from_seq: 10, resume_complete: true, last_seq: 15,
    events: [ev.add(11, comment(3, 2)), ev.add(12, reply(4, 3, 1)), ev.add(13, reply(5, 4, 3)), ev.react(14, 3, 4, '🎬'), ev.react(15, 1, 4)],
  });
  assert.equal(s.state, 'live');
  assert.equal(s.byId.get(1).reply_count, 1, 'the reply counted on its root, once');
  assert.equal(s.byId.get(3).reply_count, 1, 'page 2 already counted seq 13');
  assert.deepEqual(s.byId.get(3).reactions, [{ emoji: '🎬', count: 1 }], 'page 2 already counted seq 14');
  assert.deepEqual(s.byId.get(1).reactions, [{ emoji: '👍', count: 1 }]);
  assert.deepEqual(s.comments.map((c) => c.id), [1, 2, 3, 4, 5]);
  s.close();
});

test('a server without the event log is resumed by comment id, and so is one rolled back to it', async () => {
  const { s } = await session();
  await noLog([comment(1, null)]);
  assert.equal(s.lastSeq, null);
  FakeSocket.last().receive({ type: 'comment', comment: comment(2, 1) });
  FakeSocket.last().drop(1006);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(since(FakeSocket.last()), { since: '2', since_seq: null });
  // Now a server with the log, then a rollback that ignores since_seq.
  FakeSocket.last().receive(initial([], { resumed_from: 2, resume_complete: true, last_seq: 2 }));
  FakeSocket.last().drop(1006);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(since(FakeSocket.last()).since_seq, '2');
  FakeSocket.last().receive(initial([comment(9, 8)]));
  await settle();
  assert.deepEqual(since(FakeSocket.last()), { since: '2', since_seq: null });
  assert.ok(!s.byId.has(9), 'the newest-20 answer is not taken for a resume');
  s.close();
});

test('reactions: counts from history, live adds and removals; mine from events and from acks', async () => {
  const { s } = await session({ userId: 3 });
  const ws = FakeSocket.last();
  ws.receive(initial([{ ...comment(1, null), reactions: [{ emoji: '👍', count: 2 }, { emoji: '🔥', count: 1 }] }], { resumed_from: 0, resume_complete: true, last_seq: 5 }));
  assert.deepEqual(s.reactionsOf(1), [{ emoji: '👍', count: 2, mine: false }, { emoji: '🔥', count: 1, mine: false }]);
  ws.receive(ev.unreact(6, 1, 8, '🔥'));
  ws.receive(ev.react(7, 1, 3, '🎬'));
  // In emoji order, as the server lists them.
  assert.deepEqual(s.reactionsOf(1), [{ emoji: '🎬', count: 1, mine: true }, { emoji: '👍', count: 2, mine: false }]);
  // History said two 👍 without saying whose: adding it again is a no-op the ack reveals.
  const added = s.addReaction(1, '👍');
  await settle();
  const sent = ws.sent.at(-1);
  assert.deepEqual(sent.reaction, { comment_id: 1, emoji: '👍' });
  assert.equal(sent.type, 'reaction_add');
  ws.receive({ type: 'ack', command: 'reaction_add', client_msg_id: sent.client_msg_id, seq: null, duplicate: false });
  assert.equal((await added).seq, null);
  assert.deepEqual(s.reactionsOf(1)[1], { emoji: '👍', count: 2, mine: true });
  s.close();
});

test('every command goes through the outbox, is sent again with its id after a reconnect, and settles by its ack', async () => {
  const { s } = await session();
  FakeSocket.last().receive(initial([comment(1, null)], { resumed_from: 0, resume_complete: true, last_seq: 1 }));
  const calls = {
    comment_edit: s.editComment(1, { text: 'better', title: 'T' }),
    comment_delete: s.deleteComment(1),
    comment_resolve: s.resolveComment(1),
    comment_reopen: s.reopenComment(1),
    reaction_add: s.addReaction(1, '👍'),
    reaction_remove: s.removeReaction(1, '👍'),
  };
  await settle();
  const first = FakeSocket.last().sent;
  assert.deepEqual(first.map((m) => m.type), Object.keys(calls));
  assert.deepEqual(first[0].edit, { comment_id: 1, text: 'better', title: 'T' });
  for (const m of first.slice(1, 4)) assert.equal(m.comment_id, 1);
  assert.deepEqual(first[5].reaction, { comment_id: 1, emoji: '👍' });
  assert.equal(s.waiting.length, 6);
  assert.deepEqual(s.waiting.map((w) => w.command), Object.keys(calls));
  // No ack before the socket drops: all six again, same ids, on the next socket.
  FakeSocket.last().drop(1006);
  await new Promise((r) => setTimeout(r, 20));
  const ws = FakeSocket.last();
  ws.receive({ type: 'initial_state', project_id: 7, comments: [], online_users: [], last_comment_id: 1, resumed_from_seq: 1, resume_complete: true, last_seq: 1 });
  await settle();
  assert.deepEqual(ws.sent.map((m) => m.client_msg_id), first.map((m) => m.client_msg_id));
  ws.sent.forEach((m, i) => ws.receive({ type: 'ack', command: m.type, client_msg_id: m.client_msg_id, seq: i + 2, duplicate: i === 0 }));
  for (const [command, p] of Object.entries(calls)) assert.equal((await p).command, command);
  assert.equal((await calls.comment_edit).duplicate, true);
  assert.equal(s.waiting.length, 0);
  s.close();
});

test('a command refused by name rejects with the command; invalid input never leaves the client', async () => {
  const { s } = await session();
  const ws = FakeSocket.last();
  ws.receive(initial([comment(1, null)], { resumed_from: 0, resume_complete: true, last_seq: 1 }));
  const del = s.deleteComment(1);
  await settle();
  ws.receive({ type: 'error', message: 'Permission denied', client_msg_id: ws.sent.at(-1).client_msg_id });
  await assert.rejects(del, (e) => e.command === 'comment_delete' && e.message === 'Permission denied' && !e.retryable);
  const before = ws.sent.length;
  await assert.rejects(s.editComment(1, { text: '' }), /Invalid comment data/);
  await assert.rejects(s.resolveComment(/** @type {any} */ ('1')), /Invalid comment data/);
  await assert.rejects(s.addReaction(1, ''), /Invalid reaction data/);
  await assert.rejects(s.addReaction(1, 'thumbs up'), /Invalid reaction data/, 'no whitespace');
  await assert.rejects(s.removeReaction(1, 'x'.repeat(33)), /Invalid reaction data/);
  await assert.rejects(s.addComment({ feedback_id: 1, text: 'r', timestamp_end: 5 }), /Invalid comment data/, 'an end needs a start');
  await assert.rejects(s.addComment({ feedback_id: 1, text: 'r', timestamp: 6, timestamp_end: 5 }), /Invalid comment data/);
  await assert.rejects(s.addComment({ feedback_id: 1, text: 'r', timestamp: 6, timestamp_end: 90_000 }), /Invalid comment data/);
  await settle();
  assert.equal(ws.sent.length, before);
  assert.equal(s.waiting.length, 0);
  s.close();
});

test('addComment sends a reply and a range as given', async () => {
  const { s } = await session();
  const ws = FakeSocket.last();
  ws.receive(initial([comment(1, null)], { resumed_from: 0, resume_complete: true, last_seq: 1 }));
  const posted = s.addComment({ feedback_id: 1, text: 'the cut at', timestamp: 3, timestamp_end: 7.5, parent_id: 1 });
  await settle();
  const m = ws.sent.at(-1);
  assert.deepEqual(m.comment, { feedback_id: 1, text: 'the cut at', timestamp: 3, timestamp_end: 7.5, parent_id: 1 });
  const stored = { ...reply(2, 1, 1), timestamp: 3, timestamp_end: 7.5 };
  ws.receive({ type: 'comment_ack', client_msg_id: m.client_msg_id, comment_id: 2, duplicate: false, comment: stored });
  ws.receive(ev.add(2, stored));
  assert.equal((await posted).id, 2);
  assert.equal(s.byId.get(1).reply_count, 1, 'the ack and the broadcast count once');
  assert.deepEqual(s.repliesOf(1).map((c) => c.id), [2]);
  s.close();
});

test('outbox entries from before the commands (no `command`) are sent as comment_add', async () => {
  const outbox = new MemoryOutbox();
  await outbox.put({ client_msg_id: 'old-1', project_id: 7, comment: { feedback_id: 1, text: 'from an old tab' }, created: 1 });
  const { s } = await session({ outbox });
  FakeSocket.last().receive(initial([], { resumed_from: 0, resume_complete: true, last_seq: 0 }));
  await settle();
  assert.deepEqual(FakeSocket.last().sent, [{ type: 'comment_add', comment: { feedback_id: 1, text: 'from an old tab' }, client_msg_id: 'old-1' }]);
  s.close();
});

test('a server that keeps sending a broken chain gets backoff, not a reconnect loop', async () => {
  const { s } = await session({ backoff: { baseMs: 200, maxMs: 200 } });
  FakeSocket.last().receive(initial([], { resumed_from: 0, resume_complete: true, last_seq: 1 }));
  for (let i = 0; i < 3; i++) {
    FakeSocket.last().receive(ev.react(9, 1, 4));
    await settle();
  }
  assert.equal(FakeSocket.all.length, 3, 'two immediate resumes, then a backoff');
  assert.equal(s.state, 'reconnecting');
  s.close();
});

test('a change or reaction that could not be stored stays in the outbox and is sent again with its id', async () => {
  const { s } = await session();
  const ws = FakeSocket.last();
  ws.receive(initial([comment(1, null)], { resumed_from: 0, resume_complete: true, last_seq: 1 }));
  const edit = s.editComment(1, { text: 'again' });
  const react = s.addReaction(1, '👍');
  await settle();
  const [e, r] = ws.sent.map((m) => m.client_msg_id);
  ws.receive({ type: 'error', message: 'Change could not be stored, please retry', client_msg_id: e });
  ws.receive({ type: 'error', message: 'Reaction could not be stored, please retry', client_msg_id: r });
  await assert.rejects(edit, (err) => err.retryable === true && err.command === 'comment_edit');
  await assert.rejects(react, (err) => err.retryable === true && err.command === 'reaction_add');
  assert.equal(s.waiting.length, 2);
  await new Promise((res) => setTimeout(res, 20));
  // Each after its own jittered delay: in either order.
  assert.deepEqual(ws.sent.slice(2).map((m) => m.client_msg_id).sort(), [e, r].sort());
  s.close();
});

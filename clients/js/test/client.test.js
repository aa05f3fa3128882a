// The client library against the real server binary (see helpers/server.js).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decode, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { connect, MemoryOutbox } from '../src/index.js';
import { mintToken, TestServer, until } from './helpers/server.js';

/** A `ws` WebSocket whose inbound frames pass `filter` first and that a test can block from connecting. */
function gatedSocket() {
  const gate = { blocked: false, /** @type {(data: any) => boolean} */ filter: () => true, opened: 0, urls: [], reached: [] };
  class Gated extends WebSocket {
    constructor(url, protocols) {
      gate.urls.push(url);
      if (!gate.blocked) gate.reached.push(url);
      gate.opened++;
      // A refused connection, as when the network is gone.
      super(gate.blocked ? 'ws://127.0.0.1:9/' : url, protocols);
    }
    set onmessage(fn) {
      super.onmessage = (ev) => {
        if (gate.filter(String(ev.data))) fn(ev);
      };
    }
    get onmessage() {
      return super.onmessage;
    }
  }
  return { gate, Gated };
}

const fast = { baseMs: 50, maxMs: 400 };

/** @param {TestServer} server @param {any} user @param {number} projectId @param {object} [extra] */
function open(server, user, projectId, extra = {}) {
  return connect({
    url: server.url,
    projectId,
    getToken: () => user.access_token,
    WebSocket,
    outbox: new MemoryOutbox(),
    backoff: fast,
    ...extra,
  });
}

const live = (s, what = 'live') => until(() => s.state === 'live', 15_000, what);
const ids = (s) => s.comments.map((c) => c.id);
const noDuplicates = (s) => assert.equal(new Set(ids(s)).size, s.comments.length, 'a comment is held twice');

describe('against the real server', () => {
  /** @type {TestServer} */
  let server;
  let fx;
  before(async () => {
    server = await TestServer.start({ args: ['--no-rate-limits', '--resume-max-comments', '3'] });
    fx = await server.fixture({ editors: 1, viewers: 1 });
  });
  after(() => server?.destroy());

  test('a comment is acknowledged after commit and reaches the other member once', async () => {
    const a = open(server, fx.owner, fx.project.id);
    const b = open(server, fx.editors[0], fx.project.id);
    try {
      await live(a);
      await live(b);
      const stored = await a.addComment({ feedback_id: fx.feedback.id, text: 'the grade jumps', timestamp: 4.2 });
      assert.equal(stored.text, 'the grade jumps');
      await until(() => b.byId.has(stored.id), 5_000, 'B to get the comment');
      assert.equal(b.comments.filter((c) => c.id === stored.id).length, 1);
      assert.equal(a.waiting.length, 0, 'the acknowledged comment left the outbox');
      assert.ok(a.onlineUsers.has(fx.editors[0].user.id) || b.onlineUsers.has(fx.owner.user.id));
    } finally {
      a.close();
      b.close();
    }
  });

  test('MessagePack through an injected codec', async () => {
    const a = open(server, fx.owner, fx.project.id, { encoding: 'msgpack', codec: { encode, decode } });
    try {
      await live(a);
      assert.equal(a.ws.protocol, 'feedback.v1.msgpack');
      const stored = await a.addComment({ feedback_id: fx.feedback.id, text: 'packed' });
      assert.equal(a.byId.get(stored.id)?.text, 'packed');
    } finally {
      a.close();
    }
  });

  test('typing reaches the other member, never its sender', async () => {
    const a = open(server, fx.owner, fx.project.id);
    const b = open(server, fx.editors[0], fx.project.id);
    try {
      await live(a);
      await live(b);
      a.setTyping(true);
      await until(() => b.typingUsers.has(fx.owner.user.id), 5_000, 'B to see A typing');
      assert.ok(!a.typingUsers.has(fx.owner.user.id));
      a.setTyping(false);
      await until(() => !b.typingUsers.has(fx.owner.user.id), 5_000, 'B to see A stop');
    } finally {
      a.close();
      b.close();
    }
  });

  test('resume after missed comments: all of them, once, even past the resume cap', async () => {
    const { gate, Gated } = gatedSocket();
    const a = open(server, fx.owner, fx.project.id, { WebSocket: Gated });
    try {
      await live(a);
      gate.blocked = true;
      a.ws.terminate();
      await until(() => a.state === 'reconnecting', 5_000, 'reconnecting');
      // Five comments while A is away; the server resumes at most 3 at a time.
      for (let i = 0; i < 5; i++) await server.postComment(fx.owner.access_token, fx.feedback.id, `missed ${i}`);
      gate.blocked = false;
      const stored = await server.comments(fx.owner.access_token, fx.project.id);
      await until(() => a.newestId === stored.at(-1).id && a.state === 'live', 15_000, 'A to catch up');
      assert.deepEqual(ids(a), stored.map((c) => c.id));
      noDuplicates(a);
      // By event seq (the server knows the log), in more than one capped step.
      const after = gate.reached.slice(gate.reached.length - 2).map((u) => new URL(u).searchParams.get('since_seq'));
      const resumes = gate.reached.map((u) => new URL(u).searchParams.get('since_seq')).filter((v) => v !== null);
      assert.ok(resumes.length >= 2 && after.every((v) => v !== null), `resumed by seq more than once: ${resumes}`);
      assert.ok(Number(after[1]) > Number(after[0]), `a second step from further on: ${after}`);
    } finally {
      a.close();
    }
  });

  test('a prev_id that does not chain triggers a resume that fills the gap', async () => {
    const { gate, Gated } = gatedSocket();
    const a = open(server, fx.owner, fx.project.id, { WebSocket: Gated });
    const gaps = [];
    a.on('gap', (g) => gaps.push(g));
    try {
      await live(a);
      let dropped = 0;
      gate.filter = (data) => {
        if (dropped === 0 && data.includes('"type":"comment"') && data.includes('lost on the way')) {
          dropped++;
          return false;
        }
        return true;
      };
      await server.postComment(fx.owner.access_token, fx.feedback.id, 'lost on the way');
      await until(() => dropped === 1, 5_000, 'the frame to be dropped');
      const next = await server.postComment(fx.owner.access_token, fx.feedback.id, 'after the gap');
      await until(() => a.byId.has(next.id), 10_000, 'the comment after the gap');
      assert.equal(gaps.length, 1);
      const stored = await server.comments(fx.owner.access_token, fx.project.id);
      assert.deepEqual(ids(a), stored.map((c) => c.id));
    } finally {
      a.close();
    }
  });

  test('outbox: an unacknowledged comment is sent again with its client_msg_id and stored once', async () => {
    const { gate, Gated } = gatedSocket();
    const a = open(server, fx.editors[0], fx.project.id, { WebSocket: Gated });
    try {
      await live(a);
      const before = (await server.comments(fx.owner.access_token, fx.project.id)).length;
      // The ack is lost (and so is the rest of its frame); the socket then drops.
      let lost = 0;
      gate.filter = (data) => {
        if (data.includes('comment_ack')) {
          lost++;
          return false;
        }
        return true;
      };
      const acked = a.addComment({ feedback_id: fx.feedback.id, text: 'sent twice, stored once' });
      await until(() => lost === 1, 5_000, 'the first ack to be lost');
      gate.filter = () => true;
      a.ws.terminate();
      const comment = await acked;
      const after = await server.comments(fx.owner.access_token, fx.project.id);
      assert.equal(after.length, before + 1);
      assert.equal(after.filter((c) => c.text === 'sent twice, stored once').length, 1);
      assert.equal(a.comments.filter((c) => c.id === comment.id).length, 1);
    } finally {
      a.close();
    }
  });

  test('outbox: a comment written while the server is unreachable survives the session', async () => {
    const { gate, Gated } = gatedSocket();
    const outbox = new MemoryOutbox();
    gate.blocked = true;
    const first = open(server, fx.editors[0], fx.project.id, { WebSocket: Gated, outbox });
    const text = `written offline ${Date.now()}`;
    first.addComment({ feedback_id: fx.feedback.id, text }).catch(() => {});
    await until(async () => (await outbox.load()).length === 1, 5_000, 'the outbox entry');
    first.close();
    const second = open(server, fx.editors[0], fx.project.id, { outbox });
    try {
      await until(() => second.comments.some((c) => c.text === text) && second.waiting.length === 0, 10_000, 'the stored comment');
      assert.equal((await outbox.load()).length, 0);
      const stored = await server.comments(fx.owner.access_token, fx.project.id);
      assert.equal(stored.filter((c) => c.text === text).length, 1);
    } finally {
      second.close();
    }
  });

  test('4002: an expired token is refreshed through getToken, then the session is live', async () => {
    // Like the page: the current token until told it is stale.
    const calls = [];
    let current = mintToken(fx.owner.user.id, -60);
    const s = open(server, fx.owner, fx.project.id, {
      getToken: ({ fresh }) => {
        calls.push(fresh);
        if (fresh) current = fx.owner.access_token;
        return current;
      },
    });
    const closes = [];
    s.on('close', (c) => closes.push(c.code));
    try {
      await live(s);
      assert.deepEqual(calls.slice(0, 2), [false, true]);
      assert.equal(calls.filter((f) => f).length, 1, 'one refresh');
      assert.deepEqual(closes, [4002]);
    } finally {
      s.close();
    }
  });

  test('token_expiring: the socket is refreshed in place and outlives its first token', async () => {
    // A token that expires in 2 s: the server warns, the client sends a
    // fresh one on the same socket, and the socket stays open past the
    // first token's expiry and the server's 5 s leeway (no 4002, no reconnect).
    const calls = [];
    const s = open(server, fx.owner, fx.project.id, {
      getToken: ({ fresh }) => {
        calls.push(fresh);
        return calls.length === 1 ? mintToken(fx.owner.user.id, 2) : fx.owner.access_token;
      },
    });
    const closes = [];
    s.on('close', (c) => closes.push(c.code));
    try {
      await live(s);
      await until(() => calls.length >= 2, 10_000, 'a fresh token asked for on token_expiring');
      await new Promise((r) => setTimeout(r, 8_000));
      assert.equal(s.state, 'live');
      assert.deepEqual(closes, [], 'the socket was never closed');
      const stored = await s.addComment({ feedback_id: fx.feedback.id, text: 'after the first token expired' });
      assert.ok(stored.id > 0);
    } finally {
      s.close();
    }
  });

  test('4003 and 4001 stop the session and say why', async () => {
    const stranger = await server.user('stranger');
    const s = open(server, stranger, fx.project.id);
    const bad = open(server, { access_token: 'not-a-token' }, fx.project.id);
    try {
      await until(() => s.state === 'stopped' && bad.state === 'stopped', 10_000, 'both to stop');
      assert.equal(s.reason, 'forbidden');
      assert.equal(bad.reason, 'unauthenticated');
    } finally {
      s.close();
      bad.close();
    }
  });

  test('a viewer\'s comment is refused and leaves the outbox', async () => {
    const s = open(server, fx.viewers[0], fx.project.id);
    try {
      await live(s);
      await assert.rejects(s.addComment({ feedback_id: fx.feedback.id, text: 'not allowed' }), (e) => {
        assert.equal(e.message, 'Permission denied');
        assert.equal(e.retryable, false);
        return true;
      });
      assert.equal(s.waiting.length, 0);
    } finally {
      s.close();
    }
  });

  test('reconnects after a server restart and shows what was posted meanwhile, once', async () => {
    const a = open(server, fx.owner, fx.project.id);
    const states = [];
    a.on('state', (e) => states.push(e.state));
    try {
      await live(a);
      await server.restart();
      const posted = await server.postComment(fx.owner.access_token, fx.feedback.id, 'posted meanwhile');
      await until(() => a.byId.has(posted.id) && a.state === 'live', 15_000, 'A back with the comment');
      assert.ok(states.includes('reconnecting'), `states: ${states}`);
      const stored = await server.comments(fx.owner.access_token, fx.project.id);
      assert.deepEqual(ids(a), stored.map((c) => c.id));
    } finally {
      a.close();
    }
  });

  // ---- issue 14: the event log and the comment model ------------------------

  /** What a member sees of a comment, for comparing two sessions' state. */
  const view = (s) =>
    s.comments.map((c) => ({
      id: c.id,
      text: c.text,
      parent_id: c.parent_id ?? null,
      timestamp_end: c.timestamp_end ?? null,
      edited: !!c.edited_at,
      deleted: !!c.deleted_at,
      resolved_by: c.resolved_by ?? null,
      reply_count: c.reply_count ?? 0,
      reactions: c.reactions ?? [],
    }));

  test('resume by since_seq after missed edits, deletes and reaction removals: the same state as staying connected', async () => {
    const fresh = await server.fixture({ editors: 1 });
    const projectId = fresh.project.id;
    const feedbackId = fresh.feedback.id;
    const owner = open(server, fresh.owner, projectId, { userId: fresh.owner.user.id });
    const editor = open(server, fresh.editors[0], projectId, { userId: fresh.editors[0].user.id });
    const { gate, Gated } = gatedSocket();
    const away = open(server, fresh.owner, projectId, { WebSocket: Gated });
    try {
      await live(owner);
      await live(editor);
      await live(away);
      const c1 = await owner.addComment({ feedback_id: feedbackId, text: 'first', timestamp: 1, timestamp_end: 3 });
      const c2 = await owner.addComment({ feedback_id: feedbackId, text: 'second', timestamp: 2 });
      await editor.addReaction(c1.id, '👍');
      await editor.addReaction(c2.id, '🔥');
      await until(() => away.lastSeq === owner.lastSeq && away.byId.get(c1.id)?.reactions?.length === 1, 5_000, 'the away session to hold it all');
      assert.ok(owner.lastSeq >= 4, `lastSeq ${owner.lastSeq}`);

      gate.blocked = true;
      away.ws.terminate();
      await until(() => away.state === 'reconnecting', 5_000, 'reconnecting');
      const heldSeq = away.lastSeq;
      // Mixed changes while it is away.
      const acks = [
        await owner.editComment(c1.id, { text: 'first, reworded' }),
        await owner.deleteComment(c2.id),
        await editor.removeReaction(c1.id, '👍'),
        await editor.addReaction(c1.id, '🎬'),
        await owner.resolveComment(c1.id),
      ];
      const reply = await editor.addComment({ feedback_id: feedbackId, text: 'a reply', parent_id: c1.id });
      await editor.addComment({ feedback_id: feedbackId, text: 'a third root' });
      for (const a of acks) assert.equal(typeof a.seq, 'number', `${a.command} made an event`);
      await until(() => owner.byId.get(reply.id) && owner.lastSeq === editor.lastSeq, 5_000, 'the connected sessions to agree');

      gate.blocked = false;
      await until(() => away.state === 'live' && away.lastSeq === owner.lastSeq, 15_000, 'the away session to catch up');
      const sinceSeq = gate.urls.slice(1).map((u) => new URL(u).searchParams.get('since_seq'));
      assert.ok(sinceSeq.includes(String(heldSeq)), `resumed by seq from ${heldSeq}: ${sinceSeq}`);
      assert.ok(gate.urls.slice(1).every((u) => !new URL(u).searchParams.has('since')), 'never by comment id once a seq is known');
      assert.deepEqual(view(away), view(owner));
      noDuplicates(away);

      const first = away.byId.get(c1.id);
      assert.equal(first.text, 'first, reworded');
      assert.equal(first.resolved_by, fresh.owner.user.id);
      assert.equal(first.reply_count, 1);
      assert.deepEqual(first.reactions, [{ emoji: '🎬', count: 1 }]);
      assert.equal(away.byId.get(c2.id).text, '');
      assert.ok(away.byId.get(c2.id).deleted_at);

      // And a session that starts now, from history, sees the same.
      const late = open(server, fresh.owner, projectId);
      try {
        await live(late);
        assert.equal(late.lastSeq, owner.lastSeq);
        assert.deepEqual(view(late), view(owner));
      } finally {
        late.close();
      }
    } finally {
      owner.close();
      editor.close();
      away.close();
    }
  });

  test('every new command is acknowledged after commit, with the event it made', async () => {
    const fresh = await server.fixture({ editors: 1, viewers: 1 });
    const s = open(server, fresh.owner, fresh.project.id, { userId: fresh.owner.user.id });
    const ed = open(server, fresh.editors[0], fresh.project.id);
    const viewer = open(server, fresh.viewers[0], fresh.project.id);
    try {
      await live(s);
      await live(ed);
      await live(viewer);
      const root = await s.addComment({ feedback_id: fresh.feedback.id, text: 'root', timestamp: 4, timestamp_end: 6.5 });
      assert.deepEqual([root.timestamp, root.timestamp_end], [4, 6.5]);
      const reply = await ed.addComment({ feedback_id: fresh.feedback.id, text: 'reply', parent_id: root.id });
      assert.equal(reply.parent_id, root.id);
      const replyToReply = await s.addComment({ feedback_id: fresh.feedback.id, text: 'deeper', parent_id: reply.id });
      assert.equal(replyToReply.parent_id, root.id, 'a reply to a reply attaches to the root');

      const seqs = [];
      for (const [command, run] of [
        ['comment_edit', () => s.editComment(root.id, { text: 'root, edited' })],
        ['reaction_add', () => s.addReaction(root.id, '👍')],
        ['reaction_remove', () => s.removeReaction(root.id, '👍')],
        ['comment_resolve', () => s.resolveComment(root.id)],
        ['comment_reopen', () => s.reopenComment(root.id)],
        ['comment_delete', () => s.deleteComment(replyToReply.id)],
      ]) {
        const ack = await run();
        assert.equal(ack.type, 'ack');
        assert.equal(ack.command, command);
        assert.equal(ack.duplicate, false);
        assert.equal(typeof ack.seq, 'number', `${command}: seq`);
        seqs.push(ack.seq);
        await until(() => s.lastSeq !== null && s.lastSeq >= ack.seq, 5_000, `${command}'s event`);
      }
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in commit order');
      assert.equal(new Set(seqs).size, seqs.length);
      // Nothing to change: acknowledged without an event.
      await s.addReaction(root.id, '🔥');
      assert.equal((await s.addReaction(root.id, '🔥')).seq, null);
      assert.equal((await s.removeReaction(root.id, '🎬')).seq, null);
      assert.deepEqual(s.reactionsOf(root.id), [{ emoji: '🔥', count: 1, mine: true }]);
      await until(() => ed.byId.get(replyToReply.id)?.deleted_at, 5_000, 'the editor to see the tombstone');

      // Refusals name the command and leave the outbox.
      const refused = async (p, message) =>
        assert.rejects(p, (e) => {
          assert.equal(e.message, message);
          assert.equal(e.retryable, false);
          return true;
        });
      await refused(ed.editComment(root.id, { text: 'not mine' }), 'Permission denied');
      await refused(ed.deleteComment(root.id), 'Permission denied');
      await refused(viewer.resolveComment(root.id), 'Permission denied');
      await refused(viewer.addReaction(root.id, '👍'), 'Permission denied');
      await refused(s.editComment(999_999, { text: 'nobody' }), 'Invalid comment data');
      await refused(s.addComment({ feedback_id: fresh.feedback.id, text: 'x', parent_id: 999_999 }), 'Invalid comment data');
      assert.equal(ed.waiting.length + viewer.waiting.length + s.waiting.length, 0);
      // The owner (not the author) may delete the editor's reply.
      assert.equal(typeof (await s.deleteComment(reply.id)).seq, 'number');
    } finally {
      s.close();
      ed.close();
      viewer.close();
    }
  });

  test('a command whose ack is lost is sent again with its client_msg_id and applied once', async () => {
    const { gate, Gated } = gatedSocket();
    const s = open(server, fx.owner, fx.project.id, { WebSocket: Gated });
    try {
      await live(s);
      const c = await s.addComment({ feedback_id: fx.feedback.id, text: 'to be edited once' });
      let lost = 0;
      gate.filter = (data) => {
        if (data.includes('"type":"ack"')) {
          lost++;
          return false;
        }
        return true;
      };
      const edited = s.editComment(c.id, { text: 'edited once' });
      await until(() => lost === 1, 5_000, 'the first ack to be lost');
      gate.filter = () => true;
      s.ws.terminate();
      const ack = await edited;
      assert.equal(ack.duplicate, true);
      assert.equal(typeof ack.seq, 'number');
      const versions = await server.rest(`/comments/${c.id}/versions`, { token: fx.owner.access_token });
      assert.deepEqual(versions.versions.map((v) => v.text), ['to be edited once'], 'one edit, one previous version');
      assert.equal(s.byId.get(c.id).text, 'edited once');
    } finally {
      s.close();
    }
  });
});

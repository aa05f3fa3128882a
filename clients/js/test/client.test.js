// The client library against the real server binary (see helpers/server.js).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decode, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { connect, MemoryOutbox } from '../src/index.js';
import { mintToken, TestServer, until } from './helpers/server.js';

/** A `ws` WebSocket whose inbound frames pass `filter` first and that a test can block from connecting. */
function gatedSocket() {
  const gate = { blocked: false, /** @type {(data: any) => boolean} */ filter: () => true, opened: 0, urls: [] };
  class Gated extends WebSocket {
    constructor(url, protocols) {
      gate.urls.push(url);
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
      const sinces = gate.urls.map((u) => new URL(u).searchParams.get('since'));
      assert.ok(sinces.filter((s) => s !== '0').length >= 2, `resumed more than once: ${sinces}`);
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
});

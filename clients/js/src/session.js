// @ts-check
/**
 * One project session: a WebSocket to `/ws/feedback/{project}` kept alive
 * across server restarts and network loss; the project's comments held in id
 * order (each exactly once) and kept current by the project's event log
 * (edits, deletions, resolution, replies, reactions); who is online and who
 * is typing; and an outbox of commands that are sent until the server
 * acknowledges them.
 *
 * Resuming: the session tracks the newest event of the project's log it
 * holds (`lastSeq`, from `initial_state.last_seq` and every durable event's
 * `event.seq`) and reconnects with `?since_seq=` it, so whatever it missed
 * (an edit, a deletion, a reaction taken back) is replayed in order. A
 * server without the log (no `last_seq`) is resumed by comment id
 * (`?since=`), as before.
 *
 * @typedef {import('./types.js').Ack} Ack
 * @typedef {import('./types.js').Command} Command
 * @typedef {import('./types.js').Comment} Comment
 * @typedef {import('./types.js').CommentChange} CommentChange
 * @typedef {import('./types.js').ConnectOptions} ConnectOptions
 * @typedef {import('./types.js').NewComment} NewComment
 * @typedef {import('./types.js').OutboxEntry} OutboxEntry
 * @typedef {import('./types.js').OutboxStore} OutboxStore
 * @typedef {import('./types.js').ReactionSummary} ReactionSummary
 * @typedef {import('./types.js').SessionState} SessionState
 * @typedef {{entry: OutboxEntry, resolve: (v: any) => void, reject: (e: Error) => void,
 *   settled: boolean, stored: boolean, inFlight: boolean, retryTimer: any}} Pending
 */

import { backoffDelay } from './backoff.js';
import { defaultOutbox } from './outbox.js';
import { TypingThrottle } from './typing.js';

/** The server's close codes (README, "Close codes"). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL: 1011,
  UNAUTHENTICATED: 4001,
  TOKEN_EXPIRED: 4002,
  FORBIDDEN: 4003,
  SLOW_CONSUMER: 4008,
  KEEPALIVE_TIMEOUT: 4009,
  TOO_MANY_SOCKETS: 4029,
});

/** The server's errors about one command, by message. */
export const CommentErrors = Object.freeze({
  NOT_STORED: 'Comment could not be stored, please retry',
  CHANGE_NOT_STORED: 'Change could not be stored, please retry',
  REACTION_NOT_STORED: 'Reaction could not be stored, please retry',
  INVALID: 'Invalid comment data',
  INVALID_REACTION: 'Invalid reaction data',
  PERMISSION: 'Permission denied',
  RATE_LIMITED: 'Rate limit exceeded',
});
const COMMENT_ERRORS = new Set(Object.values(CommentErrors));
/** Retried from the outbox: the command is fine, the moment was not. */
const RETRYABLE = new Set([
  CommentErrors.NOT_STORED,
  CommentErrors.CHANGE_NOT_STORED,
  CommentErrors.REACTION_NOT_STORED,
  CommentErrors.RATE_LIMITED,
]);
/** Longest comment text the server takes, in characters. */
export const MAX_COMMENT_CHARS = 10_000;
/** The largest video position the server takes for a range, in seconds. */
export const MAX_TIMESTAMP = 86_400;

/** The durable events of the log, each applied and emitted by the session. */
const COMMENT_EVENTS = new Set(['comment', 'comment_edited', 'comment_deleted', 'comment_resolved', 'comment_reopened']);
const DURABLE = new Set([...COMMENT_EVENTS, 'reaction', 'reaction_removed', 'feedback_created', 'status_changed']);

/** A command the server refused (or could not store yet). */
export class CommentError extends Error {
  /** @param {string} message @param {{clientMsgId: string, retryable: boolean, command?: Command}} info */
  constructor(message, info) {
    super(message);
    this.name = 'CommentError';
    this.clientMsgId = info.clientMsgId;
    /** The refused command (`comment_add`, `comment_edit`, …). */
    this.command = info.command ?? 'comment_add';
    /** true: the command stays in the outbox and is sent again */
    this.retryable = info.retryable;
  }
}

/** A random UUID from `crypto.getRandomValues` (works outside secure contexts too). */
export function newClientMsgId() {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** @param {string} url */
function socketBase(url) {
  return url.replace(/\/+$/, '').replace(/^http(s?):\/\//, 'ws$1://');
}

/** @param {unknown} v @returns {v is number} */
const isId = (v) => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** @param {unknown} v @returns {boolean} */
const isText = (v) => {
  if (typeof v !== 'string') return false;
  const chars = [...v].length;
  return chars >= 1 && chars <= MAX_COMMENT_CHARS;
};

/** An emoji as the server takes it: 1..=32 characters, no whitespace or control characters. @param {unknown} v */
const isEmoji = (v) => typeof v === 'string' && [...v].length >= 1 && [...v].length <= 32 && !/[\s\p{Cc}]/u.test(v);

/** @param {unknown} v @returns {boolean} */
const isPosition = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= MAX_TIMESTAMP;

/** The wire message of an outbox entry. @param {OutboxEntry} e */
function wireOf(e) {
  const command = e.command ?? 'comment_add';
  if (command === 'comment_add') return { type: command, comment: e.comment, client_msg_id: e.client_msg_id };
  return { type: command, ...e.body, client_msg_id: e.client_msg_id };
}

export class ProjectSession {
  /** @param {ConnectOptions} opts */
  constructor(opts) {
    const WS = opts.WebSocket ?? globalThis.WebSocket;
    if (!WS) throw new Error('no WebSocket: pass `WebSocket` (e.g. from the "ws" package) in Node 20');
    if (opts.encoding === 'msgpack' && !opts.codec) {
      throw new Error('encoding "msgpack" needs `codec: {encode, decode}` (e.g. @msgpack/msgpack)');
    }
    /** @type {any} */
    this.WS = WS;
    this.base = socketBase(opts.url);
    this.projectId = opts.projectId;
    this.getToken = opts.getToken;
    /** @type {number | null} the signed-in user, for `ReactionSummary.mine` */
    this.userId = opts.userId ?? null;
    this.encoding = opts.encoding ?? 'json';
    this.codec = opts.codec;
    this.backoff = { baseMs: opts.backoff?.baseMs ?? 500, maxMs: opts.backoff?.maxMs ?? 15_000 };
    this.rateLimitRetryMs = opts.rateLimitRetryMs ?? 6_000;
    /** @type {OutboxStore} */
    this.store = opts.outbox ?? defaultOutbox(`p${opts.projectId}`);

    /** @type {Comment[]} the project's comments held, in id order */
    this.comments = [];
    /** @type {Map<number, Comment>} */
    this.byId = new Map();
    /**
     * @type {Map<number, number>} per held comment, the newest event its
     * reply_count and reactions reflect: an event at or below it is already
     * counted (a resume may replay it after a newer snapshot).
     */
    this.asOf = new Map();
    /** @type {Map<number, Set<number>>} root id → ids of its replies held */
    this.replyIds = new Map();
    /** @type {Map<number, Map<string, Set<number>>>} comment → emoji → users known to have reacted */
    this.reactors = new Map();
    /**
     * @type {number | null} the newest event of the project's log this
     * session holds everything up to; null until the server says (or when
     * it has no event log), and while a history is still being paged in.
     */
    this.lastSeq = null;
    /** @type {number | null} while paging the history by comment id: the lowest `last_seq` of its pages */
    this.historySeq = null;
    /**
     * The next connect asks for no resume: its `initial_state` (the newest
     * comments and `last_seq`, read together) tells whether the server keeps
     * an event log, when a history by comment id came without `last_seq`.
     */
    this.probing = false;
    /** The server answered a plain connect without `last_seq`: no event log. */
    this.noLog = false;
    /** gap resumes since the last event that applied cleanly */
    this.gapResumes = 0;
    /** @type {Set<number>} */
    this.onlineUsers = new Set();
    /** @type {Set<number>} */
    this.typingUsers = new Set();
    /** @type {Map<string, Pending>} unacknowledged commands, oldest first */
    this.pending = new Map();
    /** @type {SessionState} */
    this.state = 'connecting';
    /** @type {string | null} why the session stopped */
    this.reason = null;

    /** @type {Map<string, Set<(ev: any) => void>>} */
    this.listeners = new Map();
    /** @type {any} */
    this.ws = null;
    this.gen = 0;
    this.attempt = 0;
    this.needFreshToken = false;
    /** 4002 closes since the last `initial_state` */
    this.expiredInARow = 0;
    this.stopped = false;
    this.offline = false;
    /** @type {any} */
    this.timer = null;
    this.typing = new TypingThrottle((t) => this.send({ type: 'typing_indicator', is_typing: t }), opts.typing);

    this.onOnline = () => {
      this.offline = false;
      this.attempt = 0;
      if (!this.stopped && !this.ws) this.reconnectNow();
    };
    this.onOffline = () => {
      this.offline = true;
      this.drop();
      this.setState('offline');
    };
    const win = /** @type {any} */ (globalThis);
    this.watchNetwork = opts.watchNetwork ?? (typeof win.addEventListener === 'function' && typeof win.navigator?.onLine === 'boolean');
    if (this.watchNetwork) {
      win.addEventListener('online', this.onOnline);
      win.addEventListener('offline', this.onOffline);
      if (win.navigator.onLine === false) this.offline = true;
    }
    /** Resolves once the outbox has been loaded (and the first connect started). */
    this.ready = this.loadOutbox().then(() => {
      if (this.offline) this.setState('offline');
      else this.open();
    });
  }

  // ---- events -------------------------------------------------------------

  /**
   * @param {string} type
   * @param {(ev: any) => void} fn
   * @returns {() => void} unsubscribe
   */
  on(type, fn) {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  /** @param {string} type @param {any} ev */
  emit(type, ev) {
    for (const fn of this.listeners.get(type) ?? []) {
      try {
        fn(ev);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /** @param {SessionState} state @param {string | null} [reason] */
  setState(state, reason = null) {
    if (this.state === state && this.reason === reason) return;
    this.state = state;
    this.reason = reason;
    this.emit('state', { state, reason, pending: this.pending.size });
  }

  /** The id of the newest comment held, or null. */
  get newestId() {
    return this.comments.length ? this.comments[this.comments.length - 1].id : null;
  }

  // ---- connection ---------------------------------------------------------

  /** The resume cursor of the next connect: by event seq when known, else by comment id. */
  cursor() {
    if (this.lastSeq !== null) return `&since_seq=${this.lastSeq}`;
    if (this.probing) return '';
    return `&since=${this.newestId ?? 0}`;
  }

  async open() {
    if (this.stopped || this.offline) return;
    const gen = ++this.gen;
    let token;
    try {
      token = await this.getToken({ fresh: this.needFreshToken });
    } catch (e) {
      if (gen !== this.gen) return;
      if (/** @type {any} */ (e)?.fatal) return this.stop('unauthenticated');
      return this.scheduleReconnect();
    }
    if (gen !== this.gen || this.stopped || this.offline) return;
    this.needFreshToken = false;
    const url = `${this.base}/ws/feedback/${this.projectId}?token=${encodeURIComponent(token)}${this.cursor()}`;
    const protocols = this.encoding === 'msgpack' ? ['feedback.v1.msgpack'] : ['feedback.v1.json'];
    let ws;
    try {
      ws = new this.WS(url, protocols);
    } catch {
      return this.scheduleReconnect();
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onmessage = (/** @type {any} */ ev) => {
      if (gen === this.gen) this.onFrame(ev.data, gen);
    };
    ws.onclose = (/** @type {any} */ ev) => {
      if (gen === this.gen) this.onClose(ev.code, ev.reason);
    };
    ws.onerror = () => {};
  }

  /** Forgets the current socket (its events are ignored from now on). */
  drop() {
    this.gen++;
    clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    this.typing.reset();
    for (const p of this.pending.values()) p.inFlight = false;
    if (this.typingUsers.size) {
      this.typingUsers.clear();
      this.emit('typing', { user_id: null, is_typing: false, typing: this.typingUsers });
    }
    if (ws && (ws.readyState === 0 || ws.readyState === 1)) {
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
  }

  reconnectNow() {
    this.drop();
    this.setState('reconnecting');
    this.open();
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.drop();
    if (this.offline) return this.setState('offline');
    const delay = backoffDelay(this.attempt++, this.backoff);
    this.setState('reconnecting');
    this.timer = setTimeout(() => this.open(), delay);
  }

  /** Asks for everything after the newest event (or comment) held, on a fresh socket. */
  resume() {
    this.reconnectNow();
  }

  /**
   * Resumes because events went missing. A gap found again right after a
   * resume, before anything applied cleanly, waits its backoff turn: a
   * server that keeps sending a broken chain must not get a reconnect loop.
   */
  resumeAfterGap() {
    if (this.gapResumes++ < 2) return this.resume();
    return this.scheduleReconnect();
  }

  /** @param {number} code @param {string} reason */
  onClose(code, reason) {
    this.ws = null;
    this.emit('close', { code, reason });
    switch (code) {
      case CloseCode.UNAUTHENTICATED:
        return this.stop('unauthenticated');
      case CloseCode.FORBIDDEN:
        return this.stop('forbidden');
      case CloseCode.TOKEN_EXPIRED:
        this.needFreshToken = true;
        // At once the first time; a fresh token refused again waits its turn.
        if (this.expiredInARow++ === 0) return this.reconnectNow();
        return this.scheduleReconnect();
      default:
        return this.scheduleReconnect();
    }
  }

  /** Stops for good and says why (`state` event with `stopped`). @param {string} reason */
  stop(reason) {
    this.stopped = true;
    this.drop();
    this.removeNetworkListeners();
    this.setState('stopped', reason);
  }

  /** Closes the session (commands still waiting stay in the outbox store). */
  close() {
    this.stop('closed');
  }

  removeNetworkListeners() {
    if (this.watchNetwork) {
      const win = /** @type {any} */ (globalThis);
      win.removeEventListener('online', this.onOnline);
      win.removeEventListener('offline', this.onOffline);
    }
  }

  /** @param {object} msg @returns {boolean} whether it was sent */
  send(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1 || this.state !== 'live') return false;
    ws.send(this.encoding === 'msgpack' && this.codec ? this.codec.encode(msg) : JSON.stringify(msg));
    return true;
  }

  // ---- inbound ------------------------------------------------------------

  /** @param {any} data @param {number} gen */
  onFrame(data, gen) {
    let msg;
    try {
      if (typeof data === 'string') msg = JSON.parse(data);
      else if (this.codec) msg = this.codec.decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
      else return;
    } catch {
      return;
    }
    this.onMessage(msg, gen);
  }

  /** @param {any} m @param {number} gen */
  onMessage(m, gen) {
    if (gen !== this.gen || !m || typeof m !== 'object') return;
    if (DURABLE.has(m.type)) {
      this.onDurable(m);
      return;
    }
    switch (m.type) {
      case 'batch':
        for (const inner of m.messages ?? []) this.onMessage(inner, gen);
        return;
      case 'initial_state':
        return this.onInitialState(m);
      case 'comment_ack':
        return this.onCommentAck(m);
      case 'ack':
        return this.onAck(m);
      case 'typing':
        if (m.is_typing) this.typingUsers.add(m.user_id);
        else this.typingUsers.delete(m.user_id);
        return this.emit('typing', { user_id: m.user_id, is_typing: !!m.is_typing, typing: this.typingUsers });
      case 'presence_join':
        this.onlineUsers.add(m.user_id);
        return this.emit('presence', { user_id: m.user_id, online: this.onlineUsers });
      case 'presence_leave':
        this.onlineUsers.delete(m.user_id);
        this.typingUsers.delete(m.user_id);
        return this.emit('presence', { user_id: m.user_id, online: this.onlineUsers });
      case 'token_refreshed':
        return this.emit(m.type, m);
      case 'token_expiring':
        return void this.refreshOnSocket(gen);
      case 'resync':
        this.emit('resync', m);
        return this.resume();
      case 'error':
        return this.onError(m);
      default:
        return this.emit('message', m);
    }
  }

  /** @param {any} m */
  onInitialState(m) {
    this.attempt = 0;
    this.expiredInARow = 0;
    this.onlineUsers = new Set(m.online_users ?? []);
    this.emit('presence', { user_id: null, online: this.onlineUsers });
    const snapshotSeq = typeof m.last_seq === 'number' ? m.last_seq : null;

    if (typeof m.resumed_from_seq === 'number') {
      // A resume by event number: the events after it, exactly as they
      // went out live (entities as they are now), in order.
      this.lastSeq = m.resumed_from_seq;
      for (const ev of m.events ?? []) {
        if (!this.onDurable(ev)) return;
      }
      if (snapshotSeq !== null && snapshotSeq > (this.lastSeq ?? 0)) this.lastSeq = snapshotSeq;
      if (m.resume_complete === false) return this.resume();
      return this.goLive();
    }

    if (this.probing) {
      // The plain connect after a history without `last_seq`: its newest
      // comments and `last_seq` are one snapshot, the watermark to resume
      // by seq from. Without `last_seq` the server has no event log.
      this.probing = false;
      for (const c of m.comments ?? []) this.hold(c, { snapshotSeq });
      if (snapshotSeq === null) this.noLog = true;
      else this.lastSeq = snapshotSeq;
      return this.goLive();
    }

    if (this.lastSeq !== null) {
      // Asked by event number, answered without: a server without the
      // event log (a rollback). Resume by comment id from what is held.
      this.lastSeq = null;
      return this.resume();
    }

    // A resume by comment id: a page of the comments after `since`. Their
    // reactions and reply counts are as of this page's `last_seq`.
    for (const c of m.comments ?? []) this.hold(c, { snapshotSeq });
    if (snapshotSeq !== null && (this.historySeq === null || snapshotSeq < this.historySeq)) this.historySeq = snapshotSeq;
    if (m.resume_complete === false) return this.resume();
    if (this.historySeq !== null) {
      // The history is in. The earliest page reflects the log up to its
      // `last_seq` only: resume by seq from there, so that what changed
      // while later pages were read (an edit, a reaction) is not lost.
      const floor = this.historySeq;
      this.historySeq = null;
      this.lastSeq = floor;
      if (snapshotSeq !== null && snapshotSeq > floor) return this.resume();
    } else if (!this.noLog) {
      // The history came without `last_seq` (servers before it was sent on
      // a resume by comment id): learn it from a plain connect. What changes between this read and that one is not
      // replayed; the newest comments are re-read with it.
      this.probing = true;
      return this.resume();
    }
    this.goLive();
  }

  goLive() {
    this.setState('live');
    this.flush();
  }

  /**
   * A durable event, live or replayed by a resume. With an event log
   * (`lastSeq` known) an event at or below `lastSeq` is a duplicate and one
   * whose `prev_seq` is not `lastSeq` means events went missing: resume.
   * Without one, comments chain by `prev_id` instead.
   * @param {any} m
   * @returns {boolean} false when it started a resume (stop processing this frame)
   */
  onDurable(m) {
    if (!m || !DURABLE.has(m.type)) return true;
    const ev = m.event;
    const seq = ev && typeof ev.seq === 'number' ? ev.seq : null;
    if (seq !== null && this.lastSeq !== null) {
      if (seq <= this.lastSeq) return true;
      if (ev.prev_seq !== this.lastSeq) {
        this.emit('gap', { expected_seq: this.lastSeq, prev_seq: ev.prev_seq, seq });
        this.resumeAfterGap();
        return false;
      }
    } else if (m.type === 'comment' && !this.chains(m.comment)) {
      return false;
    }
    this.apply(m, seq);
    if (seq !== null && this.lastSeq !== null) {
      this.lastSeq = seq;
      if (this.state === 'live') this.gapResumes = 0;
    }
    this.emit('change', m);
    return true;
  }

  /**
   * Without an event log: a live comment must name the newest comment held
   * as its predecessor, else comments went missing (resume).
   * @param {Comment} c
   */
  chains(c) {
    if (!c || this.byId.has(c.id)) return true;
    const newest = this.newestId;
    if (newest !== null && c.id < newest) return true;
    if ((c.prev_id ?? null) !== newest) {
      this.emit('gap', { expected: newest, prev_id: c.prev_id ?? null, id: c.id });
      this.resumeAfterGap();
      return false;
    }
    return true;
  }

  /**
   * Applies one durable event to the held state and emits it.
   * @param {any} m @param {number | null} seq
   */
  apply(m, seq) {
    switch (m.type) {
      case 'comment': {
        const c = m.comment;
        if (!c || typeof c.id !== 'number') return;
        const fresh = !this.byId.has(c.id);
        const parent = c.parent_id;
        this.hold(c, { seq });
        // A reply counts on its root once: the root's snapshot may already
        // include it (a resume replaying older events).
        if (typeof parent === 'number' && this.byId.has(parent)) {
          if (seq !== null ? seq > (this.asOf.get(parent) ?? 0) : fresh) {
            this.patch(parent, (root) => ({ ...root, reply_count: (root.reply_count ?? 0) + 1 }), seq);
          }
        }
        return;
      }
      case 'comment_edited':
      case 'comment_deleted':
      case 'comment_resolved':
      case 'comment_reopened': {
        if (!m.comment || typeof m.comment.id !== 'number') return;
        const held = this.hold(m.comment, { seq });
        return this.emit(m.type, { ...m, comment: held });
      }
      case 'reaction':
      case 'reaction_removed':
        this.applyReaction(m.reaction, m.type === 'reaction' ? 1 : -1, seq);
        return this.emit(m.type, m);
      default:
        return this.emit(m.type, m);
    }
  }

  /**
   * Holds a comment: inserted in id order (and emitted as `comment`) when
   * new, replaced when held. A snapshot (initial_state) brings its reply
   * count and reactions as of `snapshotSeq`; a live event brings neither, so
   * the held ones stay.
   * @param {Comment} c
   * @param {{snapshotSeq?: number | null, seq?: number | null}} from
   * @returns {Comment} the comment as held
   */
  hold(c, from) {
    if (!c || typeof c.id !== 'number') return c;
    const held = this.byId.get(c.id);
    const snapshot = 'snapshotSeq' in from;
    const at = (snapshot ? from.snapshotSeq : from.seq) ?? null;
    /** @type {Comment} */
    let next;
    if (snapshot && (!held || at === null || at >= (this.asOf.get(c.id) ?? 0))) {
      next = { ...c, reply_count: c.reply_count ?? 0, reactions: c.reactions ?? [] };
    } else if (held) {
      next = { ...c, reply_count: held.reply_count ?? 0, reactions: held.reactions ?? [] };
    } else {
      next = { ...c, reply_count: c.reply_count ?? 0, reactions: c.reactions ?? [] };
    }
    if (at !== null && at > (this.asOf.get(c.id) ?? -1)) this.asOf.set(c.id, at);
    else if (!this.asOf.has(c.id)) this.asOf.set(c.id, this.lastSeq ?? 0);
    this.byId.set(c.id, next);
    if (typeof next.parent_id === 'number') {
      let set = this.replyIds.get(next.parent_id);
      if (!set) this.replyIds.set(next.parent_id, (set = new Set()));
      set.add(next.id);
    }
    const list = this.comments;
    if (held) {
      list[this.indexOf(c.id)] = next;
      return next;
    }
    if (!list.length || list[list.length - 1].id < c.id) list.push(next);
    else list.splice(this.indexOf(c.id), 0, next);
    this.emit('comment', next);
    return next;
  }

  /** Where comment `id` is (or would go) in `comments`. @param {number} id */
  indexOf(id) {
    const list = this.comments;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].id < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Replaces a held comment with `fn(comment)`; the change is counted as of `seq`.
   * @param {number} id @param {(c: Comment) => Comment} fn @param {number | null} seq
   */
  patch(id, fn, seq) {
    const held = this.byId.get(id);
    if (!held) return;
    const next = fn(held);
    this.byId.set(id, next);
    this.comments[this.indexOf(id)] = next;
    if (seq !== null) this.asOf.set(id, Math.max(seq, this.asOf.get(id) ?? 0));
  }

  /**
   * @param {import('./types.js').Reaction} r
   * @param {1 | -1} delta
   * @param {number | null} seq
   */
  applyReaction(r, delta, seq) {
    if (!r || typeof r.comment_id !== 'number') return;
    // Who reacted: an add or a removal is the last word for its (user,
    // emoji), so replays in order leave it right whatever the snapshot.
    let byEmoji = this.reactors.get(r.comment_id);
    if (!byEmoji) this.reactors.set(r.comment_id, (byEmoji = new Map()));
    let users = byEmoji.get(r.emoji);
    if (!users) byEmoji.set(r.emoji, (users = new Set()));
    const had = users.has(r.user_id);
    if (delta > 0) users.add(r.user_id);
    else users.delete(r.user_id);
    // How many: only an event newer than the comment's counts changes them.
    if (!this.byId.has(r.comment_id)) return;
    if (seq !== null ? seq <= (this.asOf.get(r.comment_id) ?? 0) : delta > 0 && had) return;
    this.patch(r.comment_id, (c) => ({ ...c, reactions: bump(c.reactions ?? [], r.emoji, delta) }), seq);
  }

  /**
   * The reactions to a held comment by emoji, with whether the user
   * (`userId`) is among them as far as the session knows.
   * @param {number} commentId
   * @returns {ReactionSummary[]}
   */
  reactionsOf(commentId) {
    const counts = this.byId.get(commentId)?.reactions ?? [];
    const known = this.reactors.get(commentId);
    return counts.map((r) => ({
      emoji: r.emoji,
      count: r.count,
      mine: this.userId !== null && (known?.get(r.emoji)?.has(this.userId) ?? false),
    }));
  }

  /** The replies held to a root comment, in id order. @param {number} rootId @returns {Comment[]} */
  repliesOf(rootId) {
    const ids = [...(this.replyIds.get(rootId) ?? [])].sort((a, b) => a - b);
    return ids.map((id) => /** @type {Comment} */ (this.byId.get(id)));
  }

  /** @param {any} m */
  onCommentAck(m) {
    const c = m.comment;
    // The ack may overtake the broadcast. With an event log the broadcast
    // is applied by seq whatever is held; without one, only a comment that
    // chains to the newest held may be taken from the ack.
    if (c && !this.byId.has(c.id) && (c.prev_id ?? null) === this.newestId) this.hold(c, {});
    const p = this.pending.get(m.client_msg_id);
    if (!p) return;
    this.forget(p);
    if (!p.settled) {
      p.settled = true;
      p.resolve(c ?? this.byId.get(m.comment_id));
    }
    this.emit('ack', m);
  }

  /** @param {Ack} m */
  onAck(m) {
    const p = m.client_msg_id ? this.pending.get(m.client_msg_id) : undefined;
    if (!p) return;
    // A reaction that changed nothing tells whether it is the user's own:
    // already there (add) or not there (remove). History has counts only.
    const r = /** @type {any} */ (p.entry.body)?.reaction;
    if (m.seq === null && !m.duplicate && r && this.userId !== null) {
      let byEmoji = this.reactors.get(r.comment_id);
      if (!byEmoji) this.reactors.set(r.comment_id, (byEmoji = new Map()));
      let users = byEmoji.get(r.emoji);
      if (!users) byEmoji.set(r.emoji, (users = new Set()));
      if (m.command === 'reaction_add') users.add(this.userId);
      else if (m.command === 'reaction_remove') users.delete(this.userId);
    }
    this.forget(p);
    if (!p.settled) {
      p.settled = true;
      p.resolve(m);
    }
    this.emit('ack', m);
  }

  /** @param {Pending} p */
  forget(p) {
    clearTimeout(p.retryTimer);
    this.pending.delete(p.entry.client_msg_id);
    this.store.delete(p.entry.client_msg_id).catch(() => {});
    this.emit('pending', { pending: this.pending.size });
  }

  /** @param {any} m */
  onError(m) {
    let id = m.client_msg_id;
    if (!id && COMMENT_ERRORS.has(m.message)) {
      // A server that does not name the command: only an unambiguous match.
      const inFlight = [...this.pending.values()].filter((p) => p.inFlight);
      if (inFlight.length === 1) id = inFlight[0].entry.client_msg_id;
    }
    const p = id ? this.pending.get(id) : undefined;
    this.emit('error', m);
    if (!p) return;
    const retryable = RETRYABLE.has(m.message);
    p.inFlight = false;
    if (!p.settled) {
      p.settled = true;
      p.reject(new CommentError(m.message, { clientMsgId: p.entry.client_msg_id, retryable, command: p.entry.command }));
    }
    if (!retryable) return this.forget(p);
    const delay = m.message === CommentErrors.RATE_LIMITED ? this.rateLimitRetryMs : backoffDelay(1, this.backoff);
    clearTimeout(p.retryTimer);
    p.retryTimer = setTimeout(() => this.sendPending(p), delay);
  }

  /** @param {number} gen */
  async refreshOnSocket(gen) {
    try {
      const token = await this.getToken({ fresh: true });
      if (gen === this.gen) this.send({ type: 'refresh_token', token });
    } catch {
      // The socket closes with 4002 at expiry; the reconnect refreshes again.
    }
  }

  // ---- outbound -----------------------------------------------------------

  async loadOutbox() {
    let entries = [];
    try {
      entries = await this.store.load();
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.project_id !== this.projectId || this.pending.has(entry.client_msg_id)) continue;
      this.pending.set(entry.client_msg_id, {
        entry,
        resolve: () => {},
        reject: () => {},
        settled: false,
        stored: true,
        inFlight: false,
        retryTimer: null,
      });
    }
    if (entries.length) this.emit('pending', { pending: this.pending.size });
  }

  /**
   * Writes a command to the outbox and sends it; settles with its
   * acknowledgement (or a named error).
   * @param {OutboxEntry} entry
   */
  enqueue(entry) {
    return new Promise((resolve, reject) => {
      /** @type {Pending} */
      const p = { entry, resolve, reject, settled: false, stored: false, inFlight: false, retryTimer: null };
      this.pending.set(entry.client_msg_id, p);
      this.emit('pending', { pending: this.pending.size });
      this.store
        .put(entry)
        .catch(() => {})
        .then(() => {
          p.stored = true;
          this.sendPending(p);
        });
    });
  }

  /**
   * @param {Exclude<Command, 'comment_add'>} command
   * @param {Record<string, unknown>} body
   * @param {boolean} valid
   * @returns {Promise<Ack>}
   */
  command(command, body, valid) {
    const client_msg_id = newClientMsgId();
    if (!valid) {
      const message = command.startsWith('reaction') ? CommentErrors.INVALID_REACTION : CommentErrors.INVALID;
      return Promise.reject(new CommentError(message, { clientMsgId: client_msg_id, retryable: false, command }));
    }
    return this.enqueue({ client_msg_id, project_id: this.projectId, command, body, created: Date.now() });
  }

  /**
   * Posts a comment (a reply with `parent_id`; a range with `timestamp` and
   * `timestamp_end`). Resolves with the stored comment once the server has
   * committed it; rejects with a {@link CommentError}. Until acknowledged it
   * waits in the outbox and is sent again after every reconnect.
   * @param {NewComment} comment
   * @returns {Promise<Comment>}
   */
  addComment(comment) {
    const client_msg_id = newClientMsgId();
    const end = comment?.timestamp_end;
    const start = comment?.timestamp;
    const rangeOk =
      end === undefined || end === null || (isPosition(end) && isPosition(start) && /** @type {number} */ (end) >= /** @type {number} */ (start));
    const parentOk = comment?.parent_id === undefined || comment?.parent_id === null || isId(comment.parent_id);
    if (!isText(comment?.text) || typeof comment.feedback_id !== 'number' || !rangeOk || !parentOk) {
      return Promise.reject(new CommentError(CommentErrors.INVALID, { clientMsgId: client_msg_id, retryable: false }));
    }
    this.typing.set(false);
    /** @type {NewComment} */
    const sent = { ...comment };
    if (sent.parent_id === null) delete sent.parent_id;
    if (sent.timestamp_end === null) delete sent.timestamp_end;
    return this.enqueue({ client_msg_id, project_id: this.projectId, command: 'comment_add', comment: sent, created: Date.now() });
  }

  /**
   * Changes the text (and title, section where given) of one's own comment.
   * @param {number} commentId @param {CommentChange} change
   * @returns {Promise<Ack>}
   */
  editComment(commentId, change) {
    /** @type {Record<string, unknown>} */
    const edit = { comment_id: commentId, text: change?.text };
    if (change?.title !== undefined) edit.title = change.title;
    if (change?.section !== undefined) edit.section = change.section;
    this.typing.set(false);
    return this.command('comment_edit', { edit }, isId(commentId) && isText(change?.text));
  }

  /** Withdraws a comment (one's own; any as admin or owner): it becomes a tombstone. @param {number} commentId */
  deleteComment(commentId) {
    return this.command('comment_delete', { comment_id: commentId }, isId(commentId));
  }

  /** Marks a comment resolved (editors and up). @param {number} commentId */
  resolveComment(commentId) {
    return this.command('comment_resolve', { comment_id: commentId }, isId(commentId));
  }

  /** Opens a resolved comment again (editors and up). @param {number} commentId */
  reopenComment(commentId) {
    return this.command('comment_reopen', { comment_id: commentId }, isId(commentId));
  }

  /**
   * Reacts to a comment (the same emoji again changes nothing). Resolves
   * with the acknowledgement; a refusal rejects it and is also emitted as
   * `error`, so a caller may ignore the promise.
   * @param {number} commentId @param {string} emoji
   * @returns {Promise<Ack>}
   */
  addReaction(commentId, emoji) {
    const p = this.command('reaction_add', { reaction: { comment_id: commentId, emoji } }, isId(commentId) && isEmoji(emoji));
    p.catch(() => {});
    return p;
  }

  /** Takes one's own reaction back (like {@link addReaction}). @param {number} commentId @param {string} emoji @returns {Promise<Ack>} */
  removeReaction(commentId, emoji) {
    const p = this.command('reaction_remove', { reaction: { comment_id: commentId, emoji } }, isId(commentId) && isEmoji(emoji));
    p.catch(() => {});
    return p;
  }

  /** @param {Pending} p */
  sendPending(p) {
    if (!p.stored || p.inFlight || !this.pending.has(p.entry.client_msg_id)) return;
    if (this.send(wireOf(p.entry))) p.inFlight = true;
  }

  flush() {
    for (const p of this.pending.values()) this.sendPending(p);
  }

  /** Call on every keystroke (`true`) and on blur (`false`). @param {boolean} isTyping */
  setTyping(isTyping) {
    this.typing.set(isTyping);
  }

  /** Commands waiting for their acknowledgement, oldest first. @returns {OutboxEntry[]} */
  get waiting() {
    return [...this.pending.values()].map((p) => p.entry);
  }
}

/**
 * Reaction counts with one emoji's count moved by `delta`, in emoji order.
 * @param {import('./types.js').ReactionCount[]} list @param {string} emoji @param {number} delta
 */
function bump(list, emoji, delta) {
  const out = list.map((r) => (r.emoji === emoji ? { emoji, count: r.count + delta } : r));
  if (!list.some((r) => r.emoji === emoji) && delta > 0) out.push({ emoji, count: delta });
  return out.filter((r) => r.count > 0).sort((a, b) => (a.emoji < b.emoji ? -1 : a.emoji > b.emoji ? 1 : 0));
}

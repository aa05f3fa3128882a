// @ts-check
/**
 * One project session: a WebSocket to `/ws/feedback/{project}` kept alive
 * across server restarts and network loss, the project's comments held in id
 * order (each exactly once), who is online and who is typing, and an outbox
 * of comments that are sent until the server acknowledges them.
 *
 * @typedef {import('./types.js').Comment} Comment
 * @typedef {import('./types.js').ConnectOptions} ConnectOptions
 * @typedef {import('./types.js').NewComment} NewComment
 * @typedef {import('./types.js').OutboxEntry} OutboxEntry
 * @typedef {import('./types.js').OutboxStore} OutboxStore
 * @typedef {import('./types.js').SessionState} SessionState
 * @typedef {{entry: OutboxEntry, resolve: (c: Comment) => void, reject: (e: Error) => void,
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

/** The server's errors about one comment, by message. */
export const CommentErrors = Object.freeze({
  NOT_STORED: 'Comment could not be stored, please retry',
  INVALID: 'Invalid comment data',
  PERMISSION: 'Permission denied',
  RATE_LIMITED: 'Rate limit exceeded',
});
const COMMENT_ERRORS = new Set(Object.values(CommentErrors));
/** Retried from the outbox: the comment is fine, the moment was not. */
const RETRYABLE = new Set([CommentErrors.NOT_STORED, CommentErrors.RATE_LIMITED]);
/** Longest comment text the server takes, in characters. */
export const MAX_COMMENT_CHARS = 10_000;

/** A comment the server refused (or could not store yet). */
export class CommentError extends Error {
  /** @param {string} message @param {{clientMsgId: string, retryable: boolean}} info */
  constructor(message, info) {
    super(message);
    this.name = 'CommentError';
    this.clientMsgId = info.clientMsgId;
    /** true: the comment stays in the outbox and is sent again */
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
    /** @type {Set<number>} */
    this.onlineUsers = new Set();
    /** @type {Set<number>} */
    this.typingUsers = new Set();
    /** @type {Map<string, Pending>} unacknowledged comments, oldest first */
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
    const since = this.newestId ?? 0;
    const url = `${this.base}/ws/feedback/${this.projectId}?token=${encodeURIComponent(token)}&since=${since}`;
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

  /** Asks for everything after the newest comment held, on a fresh socket. */
  resume() {
    this.reconnectNow();
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

  /** Closes the session (comments still waiting stay in the outbox store). */
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
    switch (m.type) {
      case 'batch':
        for (const inner of m.messages ?? []) this.onMessage(inner, gen);
        return;
      case 'initial_state':
        return this.onInitialState(m);
      case 'comment':
        return this.onLiveComment(m.comment);
      case 'comment_ack':
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
      case 'reaction':
      case 'feedback_created':
      case 'status_changed':
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
    for (const c of m.comments ?? []) this.insert(c);
    if (m.resume_complete === false) return this.resume();
    this.setState('live');
    this.flush();
  }

  /** @param {Comment} c */
  onLiveComment(c) {
    if (!c || this.byId.has(c.id)) return;
    const newest = this.newestId;
    if (newest !== null && c.id < newest) return this.insert(c);
    // Live comments chain: each names the project's previous one. A link
    // that does not meet the newest held means comments went missing.
    if ((c.prev_id ?? null) !== newest) {
      this.emit('gap', { expected: newest, prev_id: c.prev_id ?? null, id: c.id });
      return this.resume();
    }
    this.insert(c);
  }

  /** Adds a comment in id order, once. @param {Comment} c */
  insert(c) {
    if (!c || typeof c.id !== 'number' || this.byId.has(c.id)) return;
    this.byId.set(c.id, c);
    const list = this.comments;
    if (!list.length || list[list.length - 1].id < c.id) list.push(c);
    else {
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (list[mid].id < c.id) lo = mid + 1;
        else hi = mid;
      }
      list.splice(lo, 0, c);
    }
    this.emit('comment', c);
  }

  /** @param {any} m */
  onAck(m) {
    const c = m.comment;
    if (c && !this.byId.has(c.id) && (c.prev_id ?? null) === this.newestId) this.insert(c);
    const p = this.pending.get(m.client_msg_id);
    if (!p) return;
    this.forget(p);
    if (!p.settled) {
      p.settled = true;
      p.resolve(c ?? this.byId.get(m.comment_id));
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
      // A server that does not name the comment: only an unambiguous match.
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
      p.reject(new CommentError(m.message, { clientMsgId: p.entry.client_msg_id, retryable }));
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
   * Posts a comment. Resolves with the stored comment once the server has
   * committed it; rejects with a {@link CommentError}. Until acknowledged it
   * waits in the outbox and is sent again after every reconnect.
   * @param {NewComment} comment
   * @returns {Promise<Comment>}
   */
  addComment(comment) {
    const text = comment?.text ?? '';
    const chars = [...text].length;
    const client_msg_id = newClientMsgId();
    if (chars < 1 || chars > MAX_COMMENT_CHARS || typeof comment.feedback_id !== 'number') {
      return Promise.reject(new CommentError(CommentErrors.INVALID, { clientMsgId: client_msg_id, retryable: false }));
    }
    this.typing.set(false);
    /** @type {OutboxEntry} */
    const entry = { client_msg_id, project_id: this.projectId, comment: { ...comment }, created: Date.now() };
    return new Promise((resolve, reject) => {
      /** @type {Pending} */
      const p = { entry, resolve, reject, settled: false, stored: false, inFlight: false, retryTimer: null };
      this.pending.set(client_msg_id, p);
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

  /** @param {Pending} p */
  sendPending(p) {
    if (!p.stored || p.inFlight || !this.pending.has(p.entry.client_msg_id)) return;
    if (this.send({ type: 'comment_add', comment: p.entry.comment, client_msg_id: p.entry.client_msg_id })) {
      p.inFlight = true;
    }
  }

  flush() {
    for (const p of this.pending.values()) this.sendPending(p);
  }

  /** @param {number} commentId @param {string} emoji @returns {boolean} sent */
  addReaction(commentId, emoji) {
    return this.send({ type: 'reaction_add', reaction: { comment_id: commentId, emoji } });
  }

  /** Call on every keystroke (`true`) and on blur (`false`). @param {boolean} isTyping */
  setTyping(isTyping) {
    this.typing.set(isTyping);
  }

  /** Comments waiting for their acknowledgement, oldest first. @returns {OutboxEntry[]} */
  get waiting() {
    return [...this.pending.values()].map((p) => p.entry);
  }
}

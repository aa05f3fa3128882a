/** The wire types of the vridge-realtime protocol (protocol/asyncapi.json). */

export interface Comment {
  id: number;
  project_id: number;
  feedback_id: number;
  user_id: number;
  text: string;
  title?: string | null;
  section?: string | null;
  security?: string | null;
  /** Position in the video, in seconds. */
  timestamp?: number | null;
  created: string;
  /** The project's previous comment, null for its first. */
  prev_id?: number | null;
}

export interface NewComment {
  feedback_id: number;
  text: string;
  title?: string | null;
  section?: string | null;
  security?: string | null;
  timestamp?: number | null;
}

export interface Feedback {
  id: number;
  project_id: number;
  title: string;
  status: string;
  priority: string;
  timestamp?: number | null;
  video_url?: string | null;
  created_by: number;
  created: string;
}

export interface Reaction {
  comment_id: number;
  user_id: number;
  emoji: string;
  created: string;
}

/** A comment waiting for its acknowledgement. */
export interface OutboxEntry {
  client_msg_id: string;
  project_id: number;
  comment: NewComment;
  /** ms since the epoch, orders the outbox */
  created: number;
}

/** Where unacknowledged comments are kept (IndexedDB in browsers). */
export interface OutboxStore {
  load(): Promise<OutboxEntry[]>;
  put(entry: OutboxEntry): Promise<void>;
  delete(clientMsgId: string): Promise<void>;
}

export interface Codec {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

export type SessionState = 'connecting' | 'live' | 'reconnecting' | 'offline' | 'stopped';

export interface ConnectOptions {
  /** The server's origin: `http(s)://host:port` or `ws(s)://host:port`. */
  url: string;
  projectId: number;
  /**
   * An access token. `fresh: true` after a 4002 close or a `token_expiring`
   * event: the current token is expired, get a new one (e.g. `/auth/refresh`).
   * Reject with an error whose `fatal` is true to stop the session.
   */
  getToken(opts: { fresh: boolean }): string | Promise<string>;
  /** `json` (default) or `msgpack` (needs `codec`). */
  encoding?: 'json' | 'msgpack';
  codec?: Codec;
  /** Defaults to `globalThis.WebSocket`; in Node 20 pass the `ws` package's. */
  WebSocket?: unknown;
  /** Defaults to IndexedDB (key `p<projectId>`) where available, memory otherwise. */
  outbox?: OutboxStore;
  backoff?: { baseMs?: number; maxMs?: number };
  /** Delay before a rate-limited comment is sent again (default 6000 ms). */
  rateLimitRetryMs?: number;
  typing?: { refreshMs?: number; budget?: number; windowMs?: number; now?: () => number };
  /** Follow the browser's online/offline events (default: when available). */
  watchNetwork?: boolean;
}

export interface StateEvent {
  state: SessionState;
  /** With `stopped`: `unauthenticated` (4001 or a fatal getToken), `forbidden` (4003) or `closed`. */
  reason: string | null;
  pending: number;
}

export interface SessionEvents {
  state: StateEvent;
  comment: Comment;
  ack: { client_msg_id: string; comment_id: number; duplicate: boolean; comment?: Comment };
  pending: { pending: number };
  typing: { user_id: number | null; is_typing: boolean; typing: Set<number> };
  presence: { user_id: number | null; online: Set<number> };
  reaction: { type: 'reaction'; reaction: Reaction; user_id: number };
  feedback_created: { type: 'feedback_created'; feedback: Feedback };
  status_changed: { type: 'status_changed'; feedback_id: number; status: string; priority: string; user_id: number };
  token_refreshed: { type: 'token_refreshed'; expires_at: number };
  resync: { type: 'resync'; reason: string };
  gap: { expected: number | null; prev_id: number | null; id: number };
  error: { type: 'error'; message: string; client_msg_id?: string };
  close: { code: number; reason: string };
  message: { type: string; [k: string]: unknown };
}

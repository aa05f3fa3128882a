/** The wire types of the vridge-realtime protocol (protocol/asyncapi.json). */

/**
 * A stored comment. The fields after `prev_id` came with threads, edits,
 * deletion, resolution, ranges and reaction counts; the server leaves them
 * out when they hold nothing.
 */
export interface Comment {
  id: number;
  project_id: number;
  feedback_id: number;
  user_id: number;
  /** Empty for a deleted comment (a tombstone). */
  text: string;
  title?: string | null;
  section?: string | null;
  security?: string | null;
  /** Position in the video, in seconds (the start of a range). */
  timestamp?: number | null;
  created: string;
  /** The project's previous comment, null for its first. */
  prev_id?: number | null;
  /** The root comment this one answers (threads are one level deep). */
  parent_id?: number | null;
  /** The end of the range the comment covers, in seconds. */
  timestamp_end?: number | null;
  /** When its author last edited it (RFC 3339). */
  edited_at?: string | null;
  /** When it was withdrawn (RFC 3339): a tombstone, its replies stay. */
  deleted_at?: string | null;
  /** When it was resolved (RFC 3339); absent while open. */
  resolved_at?: string | null;
  /** Who resolved it; absent while open. */
  resolved_by?: number | null;
  /**
   * Replies to this root. The server sends it in history and
   * `initial_state`; a session keeps it current with the replies that
   * arrive later.
   */
  reply_count?: number;
  /**
   * Reactions by emoji, in emoji order. The server sends them in history
   * and `initial_state`; a session keeps them current with live
   * `reaction` / `reaction_removed` events.
   */
  reactions?: ReactionCount[];
}

/** How many members reacted to a comment with one emoji. */
export interface ReactionCount {
  emoji: string;
  count: number;
}

/** A comment's reactions as a session knows them. */
export interface ReactionSummary extends ReactionCount {
  /**
   * Whether the session's user (`ConnectOptions.userId`) is known to have
   * reacted with it: learnt from events and from acknowledgements, not from
   * history, which carries counts only.
   */
  mine: boolean;
}

/** Where a durable event stands in its project's event log. */
export interface EventMeta {
  /** This event's number in its project's log (1, 2, 3, … without holes). */
  seq: number;
  /** The number of the event before it (`0` for the first). */
  prev_seq: number;
  /** Who made the change. */
  actor_id: number;
  /** When it was committed (RFC 3339, UTC). */
  at: string;
}

export interface NewComment {
  feedback_id: number;
  text: string;
  title?: string | null;
  section?: string | null;
  security?: string | null;
  /** Position in the video, in seconds (the start of a range). */
  timestamp?: number | null;
  /** The end of the range, in seconds: needs `timestamp`, end ≥ start, both within 0..=86400. */
  timestamp_end?: number | null;
  /** The comment this one answers (a reply to a reply attaches to the root). */
  parent_id?: number | null;
}

/** The new text of a comment (and title, section where given). */
export interface CommentChange {
  text: string;
  title?: string | null;
  section?: string | null;
}

/** `open`, `in_progress`, `resolved` or `closed`. */
export type FeedbackStatus = 'open' | 'in_progress' | 'resolved' | 'closed';

export interface Feedback {
  id: number;
  project_id: number;
  title: string;
  status: FeedbackStatus | string;
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

/** The commands that wait in the outbox until acknowledged. */
export type Command =
  | 'comment_add'
  | 'comment_edit'
  | 'comment_delete'
  | 'comment_resolve'
  | 'comment_reopen'
  | 'reaction_add'
  | 'reaction_remove';

/** The server's answer to a committed `comment_add`. */
export interface CommentAck {
  type: 'comment_ack';
  client_msg_id: string | null;
  comment_id: number;
  /** True when this was a retry of a comment stored earlier. */
  duplicate: boolean;
  comment: Comment;
}

/** The server's answer to every other command, once committed. */
export interface Ack {
  type: 'ack';
  command: Exclude<Command, 'comment_add'>;
  client_msg_id: string | null;
  /** The event the command made; null when it changed nothing (a reaction already there). */
  seq: number | null;
  /** True when this was a retry of a command committed earlier. */
  duplicate: boolean;
}

/** A comment that was added, edited, deleted, resolved or reopened. */
export interface CommentEvent<T extends CommentEventType = CommentEventType> {
  type: T;
  /** The comment as it is after the change (a tombstone for `comment_deleted`). */
  comment: Comment;
  /** Who made the change. */
  user_id: number;
  event?: EventMeta;
}
export type CommentEventType = 'comment' | 'comment_edited' | 'comment_deleted' | 'comment_resolved' | 'comment_reopened';

export interface ReactionEvent<T extends 'reaction' | 'reaction_removed' = 'reaction' | 'reaction_removed'> {
  type: T;
  reaction: Reaction;
  user_id: number;
  event?: EventMeta;
}

export interface FeedbackCreatedEvent {
  type: 'feedback_created';
  feedback: Feedback;
  event?: EventMeta;
}

export interface StatusChangedEvent {
  type: 'status_changed';
  feedback_id: number;
  status: FeedbackStatus | string;
  priority: string;
  user_id: number;
  event?: EventMeta;
}

/** Every durable change to a project, as it goes out live (and in a resume's `events`). */
export type DurableEvent = CommentEvent | ReactionEvent | FeedbackCreatedEvent | StatusChangedEvent;

/** A command waiting for its acknowledgement. */
export interface OutboxEntry {
  client_msg_id: string;
  project_id: number;
  /** Absent in entries written before the other commands existed: `comment_add`. */
  command?: Command;
  /** The comment of a `comment_add`. */
  comment?: NewComment;
  /** The rest of any other command's message (`{edit}`, `{comment_id}`, `{reaction}`). */
  body?: Record<string, unknown>;
  /** ms since the epoch, orders the outbox */
  created: number;
}

/** Where unacknowledged commands are kept (IndexedDB in browsers). */
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
  /** The signed-in user's id: tells which reactions are one's own (`ReactionSummary.mine`). */
  userId?: number;
  /** `json` (default) or `msgpack` (needs `codec`). */
  encoding?: 'json' | 'msgpack';
  codec?: Codec;
  /** Defaults to `globalThis.WebSocket`; in Node 20 pass the `ws` package's. */
  WebSocket?: unknown;
  /** Defaults to IndexedDB (key `p<projectId>`) where available, memory otherwise. */
  outbox?: OutboxStore;
  backoff?: { baseMs?: number; maxMs?: number };
  /** Delay before a rate-limited command is sent again (default 6000 ms). */
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

/** Events were found missing: by the comment chain (servers before the event log) or by `event.prev_seq`. */
export type GapEvent =
  | { expected: number | null; prev_id: number | null; id: number }
  | { expected_seq: number; prev_seq: number; seq: number };

export interface SessionEvents {
  state: StateEvent;
  /** A comment the session did not hold before, once, in the order they arrive. */
  comment: Comment;
  /** The held comment after the change (its reactions and reply_count kept). */
  comment_edited: CommentEvent<'comment_edited'>;
  comment_deleted: CommentEvent<'comment_deleted'>;
  comment_resolved: CommentEvent<'comment_resolved'>;
  comment_reopened: CommentEvent<'comment_reopened'>;
  ack: CommentAck | Ack;
  pending: { pending: number };
  typing: { user_id: number | null; is_typing: boolean; typing: Set<number> };
  presence: { user_id: number | null; online: Set<number> };
  reaction: ReactionEvent<'reaction'>;
  reaction_removed: ReactionEvent<'reaction_removed'>;
  feedback_created: FeedbackCreatedEvent;
  status_changed: StatusChangedEvent;
  /**
   * After every durable event the session applied (live, or replayed by a
   * resume), once per event: the one place to re-render from.
   */
  change: DurableEvent;
  token_refreshed: { type: 'token_refreshed'; expires_at: number };
  resync: { type: 'resync'; reason: string };
  gap: GapEvent;
  error: { type: 'error'; message: string; client_msg_id?: string };
  close: { code: number; reason: string };
  message: { type: string; [k: string]: unknown };
}

import type {
  Ack,
  Command,
  Comment,
  CommentChange,
  ConnectOptions,
  NewComment,
  OutboxEntry,
  OutboxStore,
  ReactionSummary,
  SessionEvents,
  SessionState,
} from './types.js';

export type * from './types.js';

export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  MESSAGE_TOO_BIG: 1009;
  INTERNAL: 1011;
  UNAUTHENTICATED: 4001;
  TOKEN_EXPIRED: 4002;
  FORBIDDEN: 4003;
  SLOW_CONSUMER: 4008;
  KEEPALIVE_TIMEOUT: 4009;
  TOO_MANY_SOCKETS: 4029;
}>;

export declare const CommentErrors: Readonly<{
  NOT_STORED: 'Comment could not be stored, please retry';
  CHANGE_NOT_STORED: 'Change could not be stored, please retry';
  REACTION_NOT_STORED: 'Reaction could not be stored, please retry';
  INVALID: 'Invalid comment data';
  INVALID_REACTION: 'Invalid reaction data';
  PERMISSION: 'Permission denied';
  RATE_LIMITED: 'Rate limit exceeded';
}>;

export declare const MAX_COMMENT_CHARS: number;
/** The largest video position of a range, in seconds. */
export declare const MAX_TIMESTAMP: number;

/** A command the server refused (or could not store yet). */
export declare class CommentError extends Error {
  readonly clientMsgId: string;
  /** The refused command. */
  readonly command: Command;
  /** true: the command stays in the outbox and is sent again. */
  readonly retryable: boolean;
}

export declare class ProjectSession {
  readonly projectId: number;
  /** The project's comments held (roots, replies, tombstones), in id order, each once, kept current. */
  readonly comments: readonly Comment[];
  readonly byId: ReadonlyMap<number, Comment>;
  readonly onlineUsers: ReadonlySet<number>;
  readonly typingUsers: ReadonlySet<number>;
  readonly state: SessionState;
  /** Why the session stopped (with state `stopped`). */
  readonly reason: string | null;
  /** The newest comment id held (the resume's `since` when the server has no event log). */
  readonly newestId: number | null;
  /** The newest event of the project's log held (the next resume's `since_seq`); null without one. */
  readonly lastSeq: number | null;
  /** Commands waiting for their acknowledgement, oldest first. */
  readonly waiting: OutboxEntry[];
  /** Resolves once the stored outbox is loaded and the first connect started. */
  readonly ready: Promise<void>;
  on<K extends keyof SessionEvents>(type: K, listener: (ev: SessionEvents[K]) => void): () => void;
  /** A comment, a reply (`parent_id`) or a range (`timestamp`..`timestamp_end`). */
  addComment(comment: NewComment): Promise<Comment>;
  /** One's own comment's new text (and title, section). */
  editComment(commentId: number, change: CommentChange): Promise<Ack>;
  /** Withdraws a comment (one's own; any as admin or owner): a tombstone remains. */
  deleteComment(commentId: number): Promise<Ack>;
  /** Editors and up. */
  resolveComment(commentId: number): Promise<Ack>;
  /** Editors and up. */
  reopenComment(commentId: number): Promise<Ack>;
  /** Acknowledged (seq null when it was there already); a refusal is also emitted as `error`. */
  addReaction(commentId: number, emoji: string): Promise<Ack>;
  /** Takes one's own reaction back; acknowledged like addReaction. */
  removeReaction(commentId: number, emoji: string): Promise<Ack>;
  /** The reactions to a held comment by emoji; `mine` needs `ConnectOptions.userId`. */
  reactionsOf(commentId: number): ReactionSummary[];
  /** The replies held to a root comment, in id order. */
  repliesOf(rootId: number): Comment[];
  /** Every keystroke: true; blur: false. Throttled inside the server's quota. */
  setTyping(isTyping: boolean): void;
  /** Reconnects at once with `?since_seq=<lastSeq>` (or `?since=<newestId>` without an event log). */
  resume(): void;
  close(): void;
}

export declare function connect(opts: ConnectOptions): ProjectSession;

export declare class MemoryOutbox implements OutboxStore {
  load(): Promise<OutboxEntry[]>;
  put(entry: OutboxEntry): Promise<void>;
  delete(clientMsgId: string): Promise<void>;
}

export declare class IndexedDBOutbox implements OutboxStore {
  constructor(key: string, idb?: IDBFactory);
  load(): Promise<OutboxEntry[]>;
  put(entry: OutboxEntry): Promise<void>;
  delete(clientMsgId: string): Promise<void>;
}

export declare function defaultOutbox(key: string): OutboxStore;

export declare function backoffDelay(
  attempt: number,
  opts?: { baseMs?: number; maxMs?: number; random?: () => number },
): number;

export declare class TypingThrottle {
  constructor(
    send: (isTyping: boolean) => boolean,
    opts?: { refreshMs?: number; budget?: number; windowMs?: number; now?: () => number },
  );
  set(isTyping: boolean): void;
  reset(): void;
}

export declare function newClientMsgId(): string;

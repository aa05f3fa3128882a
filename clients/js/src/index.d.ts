import type {
  Comment,
  ConnectOptions,
  NewComment,
  OutboxEntry,
  OutboxStore,
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
  INVALID: 'Invalid comment data';
  PERMISSION: 'Permission denied';
  RATE_LIMITED: 'Rate limit exceeded';
}>;

export declare const MAX_COMMENT_CHARS: number;

export declare class CommentError extends Error {
  readonly clientMsgId: string;
  /** true: the comment stays in the outbox and is sent again. */
  readonly retryable: boolean;
}

export declare class ProjectSession {
  readonly projectId: number;
  /** The project's comments held, in id order, each once. */
  readonly comments: readonly Comment[];
  readonly byId: ReadonlyMap<number, Comment>;
  readonly onlineUsers: ReadonlySet<number>;
  readonly typingUsers: ReadonlySet<number>;
  readonly state: SessionState;
  /** Why the session stopped (with state `stopped`). */
  readonly reason: string | null;
  /** The newest comment id held (the next resume's `since`). */
  readonly newestId: number | null;
  /** Comments waiting for their acknowledgement, oldest first. */
  readonly waiting: OutboxEntry[];
  /** Resolves once the stored outbox is loaded and the first connect started. */
  readonly ready: Promise<void>;
  on<K extends keyof SessionEvents>(type: K, listener: (ev: SessionEvents[K]) => void): () => void;
  addComment(comment: NewComment): Promise<Comment>;
  addReaction(commentId: number, emoji: string): boolean;
  /** Every keystroke: true; blur: false. Throttled inside the server's quota. */
  setTyping(isTyping: boolean): void;
  /** Reconnects at once with `?since=<newest id>`. */
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

// @ts-check
/**
 * The JavaScript client of vridge-realtime. Browser and Node 20 (pass the
 * `ws` package's WebSocket there). No runtime dependencies; MessagePack
 * through an injected codec.
 */

import { ProjectSession } from './session.js';

export { ProjectSession, CloseCode, CommentError, CommentErrors, MAX_COMMENT_CHARS, MAX_TIMESTAMP, newClientMsgId } from './session.js';
export { MemoryOutbox, IndexedDBOutbox, defaultOutbox } from './outbox.js';
export { backoffDelay } from './backoff.js';
export { TypingThrottle } from './typing.js';

/**
 * Opens a project session; it connects (and reconnects) by itself.
 * @param {import('./types.js').ConnectOptions} opts
 * @returns {ProjectSession}
 */
export function connect(opts) {
  return new ProjectSession(opts);
}

// Compiled by `tsc --noEmit` only: the hand-written declarations
// (src/index.d.ts) describe the API the way a TypeScript project uses it.
import { connect, CommentError, type Comment, type SessionState } from '../src/index.js';

const session = connect({ url: 'http://127.0.0.1:8080', projectId: 7, getToken: async () => 'token' });
const off: () => void = session.on('comment', (c: Comment) => c.prev_id);
session.on('state', (ev) => {
  const s: SessionState = ev.state;
  return s;
});
session.on('typing', (ev) => ev.typing.has(3));
const pending: Promise<Comment> = session.addComment({ feedback_id: 1, text: 'hi', timestamp: 4.2 });
pending.catch((e: unknown) => e instanceof CommentError && e.retryable);
session.setTyping(true);
const newest: number | null = session.newestId;
off();
void newest;

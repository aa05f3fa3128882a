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

// The event log and the comment model.
import type { Ack, CommentEvent, DurableEvent, ReactionSummary } from '../src/index.js';
const reply: Promise<Comment> = session.addComment({ feedback_id: 1, text: 're', parent_id: 4, timestamp: 1, timestamp_end: 2.5 });
void reply;
const acks: Promise<Ack>[] = [
  session.editComment(4, { text: 'better', title: null }),
  session.deleteComment(4),
  session.resolveComment(4),
  session.reopenComment(4),
  session.addReaction(4, '👍'),
  session.removeReaction(4, '👍'),
];
void acks[0].then((a) => (a.seq === null ? a.command : a.seq + 1));
session.on('comment_deleted', (m: CommentEvent<'comment_deleted'>) => m.comment.deleted_at);
session.on('reaction_removed', (m) => m.reaction.emoji);
session.on('change', (m: DurableEvent) => (m.type === 'status_changed' ? m.status : m.event?.seq));
session.on('ack', (m) => (m.type === 'ack' ? m.seq : m.comment.id));
session.on('gap', (g) => ('seq' in g ? g.prev_seq : g.prev_id));
const mine: ReactionSummary[] = session.reactionsOf(4);
const threads: number | undefined = session.repliesOf(4)[0]?.reply_count;
const seq: number | null = session.lastSeq;
void [mine, threads, seq];
connect({ url: 'http://x', projectId: 1, userId: 3, getToken: () => 't' });
// @ts-expect-error an edit needs its text
session.editComment(4, { title: 'no text' });
// @ts-expect-error a reaction is acknowledged, not a boolean any more
const sent: boolean = session.addReaction(4, '👍');
void sent;

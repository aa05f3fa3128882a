// @ts-check
/**
 * Typing indicators inside the server's quota (30 `typing_indicator` per user
 * per minute by default). Keystrokes call `typing(true)` as often as they
 * like; an `is_typing: true` goes out at most once per `refreshMs` (the
 * server lets an indicator lapse after 10 s, so a refresh every 4 s keeps it
 * alive), `false` only after a `true`, and never more than `budget` messages
 * in any sliding minute. A `false` that would break the budget is dropped:
 * the server lets the indicator lapse on its own.
 */

export class TypingThrottle {
  /**
   * @param {(isTyping: boolean) => boolean} send returns whether it was sent
   * @param {{refreshMs?: number, budget?: number, windowMs?: number, now?: () => number}} [opts]
   */
  constructor(send, opts = {}) {
    this.send = send;
    this.refreshMs = opts.refreshMs ?? 4_000;
    this.budget = opts.budget ?? 25;
    this.windowMs = opts.windowMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    /** @type {number[]} send times within the window */
    this.sent = [];
    /** whether the server was last told "typing" */
    this.typing = false;
    this.lastTrue = -Infinity;
  }

  /** @returns {boolean} */
  hasBudget() {
    const now = this.now();
    while (this.sent.length && now - this.sent[0] >= this.windowMs) this.sent.shift();
    return this.sent.length < this.budget;
  }

  /** @param {boolean} isTyping */
  set(isTyping) {
    const now = this.now();
    if (isTyping) {
      if (this.typing && now - this.lastTrue < this.refreshMs) return;
      if (!this.hasBudget()) return;
      if (this.send(true)) {
        this.sent.push(now);
        this.typing = true;
        this.lastTrue = now;
      }
    } else {
      if (!this.typing) return;
      this.typing = false;
      if (!this.hasBudget()) return;
      if (this.send(false)) this.sent.push(now);
    }
  }

  /** The socket went away: the server forgets the indicator itself. */
  reset() {
    this.typing = false;
    this.lastTrue = -Infinity;
  }
}

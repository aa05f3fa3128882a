// @ts-check
/**
 * Reconnect delays: exponential growth from `baseMs`, capped at `maxMs`, with
 * "equal jitter" (half the delay fixed, half random) so that a server restart
 * does not bring every client back in the same millisecond, while no client
 * waits much less than the schedule says.
 */

/**
 * @param {number} attempt 0 for the first retry
 * @param {{baseMs?: number, maxMs?: number, random?: () => number}} [opts]
 * @returns {number} milliseconds to wait
 */
export function backoffDelay(attempt, opts = {}) {
  const base = opts.baseMs ?? 500;
  const max = opts.maxMs ?? 15_000;
  const random = opts.random ?? Math.random;
  const exp = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.round(exp / 2 + random() * (exp / 2));
}

// Starts the real server binary for a test: a temporary data directory
// (SQLite), a port of its own, and a known JWT secret so tests can mint
// tokens (an expired one, for the 4002 path). Restartable on the same port
// and data directory.
import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../../..');

/** The server binary: VRIDGE_BIN, else target/debug under CARGO_TARGET_DIR. */
export function serverBinary() {
  if (process.env.VRIDGE_BIN) return process.env.VRIDGE_BIN;
  const target = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, 'target');
  return join(target, 'debug', 'vridge-realtime');
}

export const JWT_SECRET = 'test-secret-of-the-js-client-suite-0123456789';

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (srv.address());
      srv.close(() => ok(port));
    });
  });
}

export class TestServer {
  /** @param {{args?: string[]}} [opts] */
  static async start(opts = {}) {
    const s = new TestServer(await freePort(), mkdtempSync(join(tmpdir(), 'vridge-js-')), opts.args ?? []);
    await s.spawn();
    return s;
  }

  constructor(port, dataDir, args) {
    this.port = port;
    this.dataDir = dataDir;
    this.args = args;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.log = '';
  }

  async spawn() {
    const proc = spawn(
      serverBinary(),
      ['--bind', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, '--jwt-secret', JWT_SECRET, ...this.args],
      { env: { ...process.env, NO_COLOR: '1', RUST_LOG: process.env.TEST_LOG ? 'debug' : 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`server did not start:\n${this.log}`)), 30_000);
      const onData = (chunk) => {
        const text = chunk.toString();
        this.log += text;
        if (process.env.TEST_LOG) process.stderr.write(text);
        if (this.log.includes('serving')) {
          clearTimeout(timer);
          ok();
        }
      };
      proc.stderr.on('data', onData);
      proc.stdout.on('data', onData);
      proc.on('exit', (code) => {
        clearTimeout(timer);
        fail(new Error(`server exited (${code}):\n${this.log}`));
      });
    });
  }

  /** SIGTERM and wait for the exit. */
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    this.proc = null;
    await new Promise((ok) => {
      proc.once('exit', ok);
      proc.kill('SIGTERM');
      setTimeout(() => proc.kill('SIGKILL'), 15_000).unref();
    });
  }

  async restart() {
    await this.stop();
    this.log = '';
    await this.spawn();
  }

  async destroy() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** A REST call; throws on a non-2xx status. */
  async rest(path, { method = 'GET', body, token, headers = {} } = {}) {
    const res = await fetch(this.url + path, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** Registers and signs in a user. Returns the token pair with `user`. */
  async user(name, password = 'correct horse battery') {
    const email = `${name}-${randomUUID().slice(0, 8)}@example.com`;
    await this.rest('/auth/register', { method: 'POST', body: { email, password, username: `${name}${randomUUID().slice(0, 6)}` } });
    const pair = await this.rest('/auth/login', { method: 'POST', body: { email, password } });
    return { ...pair, email, password };
  }

  /**
   * An owner with a project and a feedback item, plus members by role.
   * @param {{editors?: number, viewers?: number, videoUrl?: string}} [opts]
   */
  async fixture(opts = {}) {
    const owner = await this.user('owner');
    const project = await this.rest('/projects', { method: 'POST', token: owner.access_token, body: { name: 'Cut 3' } });
    const feedback = await this.rest(`/feedback/${project.id}`, {
      method: 'POST',
      token: owner.access_token,
      body: { title: 'Colour jumps', timestamp: 4.2, priority: 'high', ...(opts.videoUrl ? { video_url: opts.videoUrl } : {}) },
    });
    const members = { editor: [], viewer: [] };
    for (const [role, n] of [['editor', opts.editors ?? 1], ['viewer', opts.viewers ?? 0]]) {
      for (let i = 0; i < n; i++) {
        const u = await this.user(role);
        await this.rest(`/projects/${project.id}/members`, { method: 'POST', token: owner.access_token, body: { email: u.email, role } });
        members[role].push(u);
      }
    }
    return { owner, project, feedback, editors: members.editor, viewers: members.viewer };
  }

  /** Posts a comment through REST (stored by the same persister as a socket's). */
  postComment(token, feedbackId, text) {
    return this.rest(`/feedback/item/${feedbackId}/comments`, {
      method: 'POST',
      token,
      body: { text },
      headers: { 'idempotency-key': randomUUID() },
    });
  }

  /** Every stored comment of the project, oldest first. */
  async comments(token, projectId) {
    const out = [];
    let since = 0;
    for (;;) {
      const page = await this.rest(`/projects/${projectId}/comments?since=${since}&limit=500`, { token });
      out.push(...page.results);
      if (!page.has_more) return out;
      since = page.last_comment_id;
    }
  }
}

/** An HS256 access token signed with the suite's secret; `expSecs` from now (may be negative). */
export function mintToken(userId, expSecs) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ sub: String(userId), exp: now + expSecs, iat: now, iss: 'vridge-realtime', aud: 'vridge', typ: 'access', jti: randomUUID() });
  const sig = createHmac('sha256', JWT_SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** Resolves when `pred()` holds, polling; rejects after `ms`. */
export async function until(pred, ms = 10_000, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

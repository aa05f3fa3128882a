// @ts-check
/**
 * The page's REST calls and its sign-in state. Tokens live in localStorage so
 * a reload or a new tab stays signed in; refreshing is serialized across tabs
 * with the Web Locks API, because refresh tokens are single use (a second use
 * of a rotated token revokes its whole family).
 */

const KEY = 'vridge.auth';

/** @typedef {{access_token: string, refresh_token: string, expires_at: number, user: {id: number, email: string, username: string}}} Auth */

/** An error the session cannot recover from: sign in again. */
export class AuthError extends Error {
  constructor(message = 'Please sign in again') {
    super(message);
    this.name = 'AuthError';
    this.fatal = true;
  }
}

export class ApiError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** @returns {Auth | null} */
export function saved() {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? 'null');
  } catch {
    return null;
  }
}

/** @param {any} pair */
function save(pair) {
  /** @type {Auth} */
  const auth = {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    expires_at: Date.now() + pair.expires_in * 1000,
    user: pair.user,
  };
  localStorage.setItem(KEY, JSON.stringify(auth));
  return auth;
}

/** @param {Response} res */
async function failure(res) {
  let message = `${res.status}`;
  try {
    const body = await res.json();
    message = body.message ?? body.error ?? message;
  } catch {
    // not JSON
  }
  return new ApiError(res.status, message);
}

/** @param {string} path @param {any} body */
async function post(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw await failure(res);
  return res.status === 204 ? null : res.json();
}

/** @param {string} email @param {string} password */
export async function login(email, password) {
  return save(await post('/auth/login', { email, password }));
}

/** @param {string} email @param {string} username @param {string} password */
export async function register(email, username, password) {
  await post('/auth/register', { email, username, password });
  return login(email, password);
}

export async function logout() {
  const auth = saved();
  localStorage.removeItem(KEY);
  if (auth) await post('/auth/logout', { refresh_token: auth.refresh_token }).catch(() => {});
}

/** @param {() => Promise<void>} fn */
async function exclusively(fn) {
  const locks = /** @type {any} */ (navigator).locks;
  if (locks) return locks.request('vridge-auth-refresh', fn);
  return fn();
}

/** Rotates the token pair, unless another tab did since `seen` was read. @param {Auth | null} seen */
async function refresh(seen) {
  await exclusively(async () => {
    const now = saved();
    if (!now) throw new AuthError();
    if (seen && now.refresh_token !== seen.refresh_token) return;
    const res = await fetch('/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: now.refresh_token }),
    });
    if (res.status === 401) {
      localStorage.removeItem(KEY);
      throw new AuthError();
    }
    if (!res.ok) throw await failure(res);
    save(await res.json());
  });
}

/** The client library's `getToken`. @param {{fresh?: boolean}} [opts] */
export async function accessToken(opts = {}) {
  const auth = saved();
  if (!auth) throw new AuthError();
  if (opts.fresh || auth.expires_at - 30_000 < Date.now()) await refresh(auth);
  const now = saved();
  if (!now) throw new AuthError();
  return now.access_token;
}

/** An authenticated REST call; refreshes once on 401. @param {string} path @param {{method?: string, body?: any}} [opts] */
export async function api(path, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    const token = await accessToken();
    const res = await fetch(path, {
      method: opts.method ?? 'GET',
      headers: {
        authorization: `Bearer ${token}`,
        ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    if (res.status === 401 && attempt === 0) {
      await refresh(saved());
      continue;
    }
    if (res.status === 401) throw new AuthError();
    if (!res.ok) throw await failure(res);
    return res.status === 204 ? null : res.json();
  }
}

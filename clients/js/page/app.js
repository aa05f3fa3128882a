// @ts-check
/**
 * The review page: sign in, the user's projects, one project's feedback
 * items with their comments (live through the client library), reactions,
 * status changes, presence, typing and the connection state. Routes live in
 * the URL's hash: `#/` (sign in or projects) and `#/p/<project id>`.
 */

import { connect, IndexedDBOutbox, MemoryOutbox } from '../src/index.js';
import { AuthError, accessToken, api, login, logout, register, saved } from './api.js';
import { el, mmss, replace } from './view.js';

const app = /** @type {HTMLElement} */ (document.getElementById('app'));
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
const REACTION = '👍';
const STATUSES = ['open', 'in_progress', 'resolved'];
const WRITE_ROLES = new Set(['owner', 'admin', 'editor']);

/** @type {null | (() => void)} */
let teardown = null;

function route() {
  teardown?.();
  teardown = null;
  const auth = saved();
  renderNav(auth);
  const m = /^#\/p\/(\d+)$/.exec(location.hash);
  if (!auth) return signInView();
  if (m) return projectView(Number(m[1]));
  return projectsView();
}

/** @param {any} auth */
function renderNav(auth) {
  if (!auth) return replace(nav);
  replace(
    nav,
    el('span', { class: 'who' }, 'Signed in as ', el('strong', {}, auth.user.username)),
    el('button', {
      type: 'button',
      class: 'link',
      onclick: async () => {
        await logout();
        location.hash = '#/';
        route();
      },
    }, 'Sign out'),
  );
}

/** @param {unknown} e */
function message(e) {
  return e instanceof Error ? e.message : String(e);
}

/** @param {unknown} e */
function onAuthLost(e) {
  if (e instanceof AuthError) {
    location.hash = '#/';
    route();
    return true;
  }
  return false;
}

// ---- sign in --------------------------------------------------------------

function signInView() {
  document.title = 'Sign in · vridge review';
  const error = el('p', { class: 'error', role: 'alert' });
  const signIn = el(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'signin-h',
      onsubmit: async (/** @type {SubmitEvent} */ ev) => {
        ev.preventDefault();
        const f = new FormData(signIn);
        try {
          await login(String(f.get('email')), String(f.get('password')));
          route();
        } catch (e) {
          error.textContent = message(e);
        }
      },
    },
    el('h1', { id: 'signin-h' }, 'Sign in'),
    field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true, id: 'signin-email' }),
    field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, id: 'signin-password' }),
    el('button', { type: 'submit' }, 'Sign in'),
  );
  const regError = el('p', { class: 'error', role: 'alert' });
  const reg = el(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'register-h',
      onsubmit: async (/** @type {SubmitEvent} */ ev) => {
        ev.preventDefault();
        const f = new FormData(reg);
        try {
          await register(String(f.get('email')), String(f.get('username')), String(f.get('password')));
          route();
        } catch (e) {
          regError.textContent = message(e);
        }
      },
    },
    el('h2', { id: 'register-h' }, 'Create an account'),
    field('Email', { name: 'email', type: 'email', autocomplete: 'email', required: true, id: 'reg-email' }),
    field('Username', { name: 'username', autocomplete: 'username', required: true, minLength: 3, maxLength: 30, id: 'reg-username' }),
    field('Password (at least 8 characters)', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minLength: 8, id: 'reg-password' }),
    el('button', { type: 'submit' }, 'Create account'),
    regError,
  );
  signIn.append(error);
  replace(app, el('div', { class: 'auth' }, signIn, reg));
}

/** @param {string} label @param {Record<string, any>} attrs */
function field(label, attrs) {
  return el('p', { class: 'field' }, el('label', { for: attrs.id }, label), el('input', attrs));
}

// ---- projects -------------------------------------------------------------

async function projectsView() {
  document.title = 'Projects · vridge review';
  const list = el('ul', { class: 'projects', 'aria-label': 'Projects' });
  const error = el('p', { class: 'error', role: 'alert' });
  const name = el('input', { id: 'new-project', name: 'name', required: true, maxLength: 200 });
  const form = el(
    'form',
    {
      class: 'inline',
      onsubmit: async (/** @type {SubmitEvent} */ ev) => {
        ev.preventDefault();
        try {
          const p = await api('/projects', { method: 'POST', body: { name: name.value } });
          location.hash = `#/p/${p.id}`;
        } catch (e) {
          if (!onAuthLost(e)) error.textContent = message(e);
        }
      },
    },
    el('label', { for: 'new-project' }, 'New project'),
    name,
    el('button', { type: 'submit' }, 'Create'),
  );
  replace(app, el('h1', {}, 'Your projects'), list, form, error);
  try {
    const page = await api('/projects?page_size=50&status=all');
    if (!page.results.length) list.append(el('li', {}, 'No projects yet.'));
    for (const p of page.results) {
      list.append(
        el(
          'li',
          {},
          el('a', { href: `#/p/${p.id}` }, p.name),
          ' ',
          el('span', { class: 'meta' }, `${p.role} · ${p.feedback_open} open of ${p.feedback_total}`),
        ),
      );
    }
  } catch (e) {
    if (!onAuthLost(e)) error.textContent = message(e);
  }
}

// ---- one project ----------------------------------------------------------

/** @param {number} projectId */
async function projectView(projectId) {
  const auth = saved();
  if (!auth) return signInView();
  replace(app, el('p', {}, 'Loading the project…'));
  let project;
  let feedback;
  try {
    [project, feedback] = await Promise.all([api(`/projects/${projectId}`), api(`/feedback/${projectId}`)]);
  } catch (e) {
    if (!onAuthLost(e)) replace(app, el('h1', {}, 'Project unavailable'), el('p', { role: 'alert' }, message(e)), el('a', { href: '#/' }, 'Back to projects'));
    return;
  }
  document.title = `${project.name} · vridge review`;
  const canWrite = WRITE_ROLES.has(project.role);
  /** @type {Map<number, string>} */
  const names = new Map(project.members.map((/** @type {any} */ m) => [m.user_id, m.username]));
  const nameOf = (/** @type {number} */ id) => names.get(id) ?? `user ${id}`;
  /** @type {Map<number, any>} */
  const items = new Map(feedback.results.map((/** @type {any} */ f) => [f.id, f]));
  let selected = feedback.results[0]?.id ?? null;
  /** @type {Map<number, Map<string, Set<number>>>} comment → emoji → users */
  const reactions = new Map();

  const conn = el('p', { id: 'conn', class: 'conn', role: 'status', dataset: { state: 'connecting' } }, 'Connecting…');
  const online = el('ul', { id: 'online', class: 'people', 'aria-label': 'Online' });
  const itemList = el('ul', { id: 'feedback', class: 'items', 'aria-label': 'Feedback items' });
  const detail = el('section', { id: 'detail', 'aria-labelledby': 'item-h' });
  const typing = el('p', { id: 'typing', class: 'typing', 'aria-live': 'polite' });

  replace(
    app,
    el(
      'div',
      { class: 'project-head' },
      el('h1', {}, project.name),
      conn,
      el('a', { href: '#/' }, 'All projects'),
    ),
    el(
      'div',
      { class: 'layout' },
      el(
        'aside',
        { 'aria-label': 'Project' },
        el('h2', {}, 'Online'),
        online,
        el('h2', {}, 'Feedback'),
        itemList,
      ),
      detail,
    ),
  );

  const outboxKey = `u${auth.user.id}:p${projectId}`;
  const session = connect({
    url: location.origin,
    projectId,
    getToken: accessToken,
    outbox: typeof indexedDB === 'undefined' ? new MemoryOutbox() : new IndexedDBOutbox(outboxKey),
  });
  /** @type {any} */ (window).vridgeSession = session;

  /** @type {HTMLVideoElement | null} */
  let video = null;
  /** @type {HTMLElement | null} */
  let commentList = null;
  let renderQueued = false;
  const queueRender = () => {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderComments();
      renderConn();
    });
  };

  function renderConn() {
    const waiting = session.waiting.length;
    const w = waiting === 1 ? '1 comment waiting' : `${waiting} comments waiting`;
    const text = {
      connecting: 'Connecting…',
      live: waiting ? `Live · ${w}` : 'Live',
      reconnecting: waiting ? `Reconnecting… · ${w}` : 'Reconnecting…',
      offline: `Offline · ${w}`,
      stopped: session.reason === 'forbidden' ? 'No access to this project' : 'Disconnected',
    }[session.state];
    conn.dataset.state = session.state;
    conn.dataset.waiting = String(waiting);
    conn.textContent = text;
    if (session.state === 'stopped' && session.reason === 'forbidden') {
      conn.append(' ', el('button', { type: 'button', class: 'link', onclick: () => location.reload() }, 'Reload'));
    }
  }

  function renderOnline() {
    replace(online, ...[...session.onlineUsers].map((id) => el('li', { dataset: { userId: id } }, nameOf(id))));
    const typists = [...session.typingUsers].filter((id) => id !== auth?.user.id).map(nameOf);
    typing.textContent = typists.length
      ? `${typists.join(', ')} ${typists.length === 1 ? 'is' : 'are'} typing…`
      : '';
  }

  function renderItems() {
    replace(
      itemList,
      ...[...items.values()].map((f) =>
        el(
          'li',
          {},
          el(
            'button',
            {
              type: 'button',
              class: 'item',
              'aria-current': f.id === selected ? 'true' : undefined,
              dataset: { feedbackId: f.id },
              onclick: () => {
                selected = f.id;
                renderItems();
                renderDetail();
              },
            },
            el('span', { class: 'title' }, f.title),
            el('span', { class: 'meta' }, `${mmss(f.timestamp)} · ${f.status.replace('_', ' ')} · ${f.priority}`),
          ),
        ),
      ),
    );
  }

  function renderDetail() {
    const f = selected === null ? null : items.get(selected);
    video = null;
    commentList = null;
    if (!f) return replace(detail, el('h2', { id: 'item-h' }, 'No feedback items yet'));
    const parts = [el('h2', { id: 'item-h' }, f.title)];
    const status = el(
      'select',
      {
        id: 'status',
        disabled: !canWrite,
        onchange: async () => {
          try {
            await api(`/feedback/item/${f.id}`, { method: 'PATCH', body: { status: status.value } });
          } catch (e) {
            if (!onAuthLost(e)) alertText(message(e));
          }
        },
      },
      ...STATUSES.map((s) => el('option', { value: s, selected: s === f.status }, s.replace('_', ' '))),
    );
    parts.push(
      el('p', { class: 'inline' }, el('label', { for: 'status' }, 'Status'), status, el('span', { class: 'meta' }, `Priority ${f.priority} · at ${mmss(f.timestamp)}`)),
    );
    if (f.video_url) {
      video = el('video', { id: 'video', src: f.video_url, controls: true, preload: 'metadata', 'aria-label': `Video for ${f.title}` });
      parts.push(video);
    }
    commentList = el('ol', { id: 'comments', class: 'comments', 'aria-label': 'Comments' });
    parts.push(el('h3', {}, 'Comments'), commentList, typing);
    parts.push(canWrite ? composer(f) : el('p', { id: 'read-only', class: 'note' }, 'You can read this project but not comment (viewer).'));
    replace(detail, ...parts);
    renderComments();
  }

  /** @param {any} f */
  function composer(f) {
    const text = el('textarea', {
      id: 'comment-text',
      name: 'text',
      rows: 3,
      maxLength: 10000,
      required: true,
      oninput: () => session.setTyping(text.value.length > 0),
      onblur: () => session.setTyping(false),
    });
    const error = el('p', { class: 'error', role: 'alert', id: 'post-error' });
    const form = el(
      'form',
      {
        id: 'composer',
        onsubmit: (/** @type {SubmitEvent} */ ev) => {
          ev.preventDefault();
          const value = text.value.trim();
          if (!value) return;
          const at = video ? video.currentTime : (f.timestamp ?? null);
          error.textContent = '';
          session
            .addComment({ feedback_id: f.id, text: value, timestamp: at })
            .catch((e) => {
              error.textContent = e.retryable ? `${e.message} (it will be sent again)` : e.message;
            })
            .finally(queueRender);
          text.value = '';
          queueRender();
        },
      },
      el('label', { for: 'comment-text' }, video ? 'Comment at the current video position' : 'Comment'),
      text,
      el('button', { type: 'submit', id: 'post' }, 'Post'),
      error,
    );
    return form;
  }

  /** @param {string} text */
  function alertText(text) {
    const e = document.getElementById('post-error');
    if (e) e.textContent = text;
  }

  function renderComments() {
    if (!commentList || selected === null) return;
    const shown = session.comments
      .filter((c) => c.feedback_id === selected)
      .slice()
      .sort((a, b) => (a.timestamp ?? Infinity) - (b.timestamp ?? Infinity) || a.id - b.id);
    const rows = shown.map((c) => commentRow(c));
    for (const w of session.waiting) {
      const wc = w.comment;
      if (!wc || wc.feedback_id !== selected) continue;
      // The broadcast of one's own comment can arrive just before its ack:
      // show it once, as stored, in that moment.
      const landed = shown.some(
        (c) => c.user_id === auth?.user.id && c.text === wc.text && Date.parse(c.created) >= w.created - 2_000,
      );
      if (landed) continue;
      rows.push(
        el(
          'li',
          { class: 'comment pending', dataset: { clientMsgId: w.client_msg_id } },
          el('span', { class: 'at' }, mmss(wc.timestamp)),
          ' ',
          el('span', { class: 'author' }, nameOf(auth?.user.id ?? 0)),
          ' ',
          el('span', { class: 'text' }, wc.text),
          ' ',
          el('span', { class: 'badge' }, 'waiting to send'),
        ),
      );
    }
    if (!rows.length) rows.push(el('li', { class: 'empty' }, 'No comments yet.'));
    replace(commentList, ...rows);
  }

  /** @param {import('../src/types.js').Comment} c */
  function commentRow(c) {
    const counts = reactions.get(c.id)?.get(REACTION);
    const mine = counts?.has(auth?.user.id ?? -1) ?? false;
    return el(
      'li',
      { class: 'comment', dataset: { commentId: c.id } },
      el(
        'button',
        {
          type: 'button',
          class: 'at',
          'aria-label': `Seek to ${mmss(c.timestamp)}`,
          onclick: () => {
            if (video && typeof c.timestamp === 'number') video.currentTime = c.timestamp;
          },
        },
        mmss(c.timestamp),
      ),
      ' ',
      el('span', { class: 'author' }, nameOf(c.user_id)),
      ' ',
      el('span', { class: 'text' }, c.text),
      ' ',
      canWrite
        ? el(
            'button',
            {
              type: 'button',
              class: 'react',
              'aria-pressed': mine ? 'true' : 'false',
              'aria-label': `React ${REACTION} to the comment by ${nameOf(c.user_id)} (${counts?.size ?? 0})`,
              onclick: () => session.addReaction(c.id, REACTION),
            },
            `${REACTION} ${counts?.size ?? 0}`,
          )
        : el('span', { class: 'react' }, `${REACTION} ${counts?.size ?? 0}`),
    );
  }

  const offs = [
    session.on('state', (ev) => {
      // BENCHMARKS.md reads this mark: navigation start to a live socket.
      if (ev.state === 'live' && !performance.getEntriesByName('vridge:live').length) performance.mark('vridge:live');
      renderConn();
      if (ev.state === 'stopped' && ev.reason === 'unauthenticated') route();
    }),
    session.on('pending', queueRender),
    session.on('comment', queueRender),
    session.on('presence', renderOnline),
    session.on('typing', renderOnline),
    session.on('reaction', (m) => {
      const r = m.reaction;
      let byEmoji = reactions.get(r.comment_id);
      if (!byEmoji) reactions.set(r.comment_id, (byEmoji = new Map()));
      let users = byEmoji.get(r.emoji);
      if (!users) byEmoji.set(r.emoji, (users = new Set()));
      users.add(r.user_id);
      queueRender();
    }),
    session.on('feedback_created', (m) => {
      items.set(m.feedback.id, m.feedback);
      if (selected === null) {
        selected = m.feedback.id;
        renderDetail();
      }
      renderItems();
    }),
    session.on('status_changed', (m) => {
      const f = items.get(m.feedback_id);
      if (!f) return;
      f.status = m.status;
      f.priority = m.priority;
      renderItems();
      const s = /** @type {HTMLSelectElement | null} */ (document.getElementById('status'));
      if (s && m.feedback_id === selected) s.value = m.status;
    }),
  ];
  teardown = () => {
    for (const off of offs) off();
    session.close();
  };

  renderItems();
  renderDetail();
  renderOnline();
  renderConn();
}

window.addEventListener('hashchange', route);
route();

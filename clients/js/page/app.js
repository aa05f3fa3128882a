// @ts-check
/**
 * The review page: sign in, the user's projects, one project's feedback
 * items with their comment threads (live through the client library):
 * replies, edits and deletion of one's own comments, resolution, ranges of
 * the video, reactions, status changes, presence, typing and the connection
 * state. Viewers read only. Routes live in
 * the URL's hash: `#/` (sign in or projects) and `#/p/<project id>`.
 */

import { connect, IndexedDBOutbox, MemoryOutbox } from '../src/index.js';
import { AuthError, accessToken, api, login, logout, register, saved } from './api.js';
import { el, mmss, replace } from './view.js';

const app = /** @type {HTMLElement} */ (document.getElementById('app'));
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
const REACTION = '👍';
const STATUSES = ['open', 'in_progress', 'resolved', 'closed'];
/** Who may comment, reply, react, resolve and reopen. */
const WRITE_ROLES = new Set(['owner', 'admin', 'editor']);
/** Who may delete anyone's comment (authors delete their own). */
const MODERATE_ROLES = new Set(['owner', 'admin']);

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

/** @typedef {import('../src/types.js').Comment} Comment */

/** @param {number} projectId */
async function projectView(projectId) {
  const auth = saved();
  if (!auth) return signInView();
  const me = auth.user.id;
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
  const canModerate = MODERATE_ROLES.has(project.role);
  /** @type {Map<number, string>} */
  const names = new Map(project.members.map((/** @type {any} */ m) => [m.user_id, m.username]));
  const nameOf = (/** @type {number} */ id) => names.get(id) ?? `user ${id}`;
  /** @type {Map<number, any>} */
  const items = new Map(feedback.results.map((/** @type {any} */ f) => [f.id, f]));
  let selected = feedback.results[0]?.id ?? null;

  // What the comment list shows besides the session's state: which forms
  // are open and what is typed in them (kept across re-renders), which
  // threads were loaded over REST, the "open only" filter.
  /** @type {number | null} the root whose reply form is open */
  let replyingTo = null;
  /** @type {number | null} the comment being edited */
  let editing = null;
  /** @type {number | null} the comment whose deletion waits for a confirmation */
  let confirmDelete = null;
  /** @type {Map<string, string>} form key → text typed */
  const drafts = new Map();
  /** @type {Map<number, Comment[]>} root → its replies, read over REST */
  const threads = new Map();
  let openOnly = false;
  /** @type {{start: number | null, end: number | null}} the composer's range, from the video */
  const range = { start: null, end: null };

  const conn = el('p', { id: 'conn', class: 'conn', role: 'status', dataset: { state: 'connecting' } }, 'Connecting…');
  const online = el('ul', { id: 'online', class: 'people', 'aria-label': 'Online' });
  const itemList = el('ul', { id: 'feedback', class: 'items', 'aria-label': 'Feedback items' });
  const detail = el('section', { id: 'detail', 'aria-labelledby': 'item-h' });
  const typing = el('p', { id: 'typing', class: 'typing', 'aria-live': 'polite' });
  const actionError = el('p', { id: 'action-error', class: 'error', role: 'alert' });

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

  const outboxKey = `u${me}:p${projectId}`;
  const session = connect({
    url: location.origin,
    projectId,
    userId: me,
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

  /**
   * Runs a command of the session; a refusal is shown, the list re-renders.
   * @param {Promise<unknown>} p
   */
  function run(p) {
    actionError.textContent = '';
    p.catch((/** @type {any} */ e) => {
      actionError.textContent = e?.retryable ? `${e.message} (it will be sent again)` : message(e);
    }).finally(queueRender);
    queueRender();
  }

  function renderConn() {
    const waiting = session.waiting;
    const comments = waiting.filter((w) => (w.command ?? 'comment_add') === 'comment_add').length;
    const changes = waiting.length - comments;
    const parts = [];
    if (comments) parts.push(comments === 1 ? '1 comment waiting' : `${comments} comments waiting`);
    if (changes) parts.push(changes === 1 ? '1 change waiting' : `${changes} changes waiting`);
    const w = parts.join(' · ');
    const text = {
      connecting: 'Connecting…',
      live: w ? `Live · ${w}` : 'Live',
      reconnecting: w ? `Reconnecting… · ${w}` : 'Reconnecting…',
      offline: w ? `Offline · ${w}` : 'Offline',
      stopped: session.reason === 'forbidden' ? 'No access to this project' : 'Disconnected',
    }[session.state];
    conn.dataset.state = session.state;
    conn.dataset.waiting = String(waiting.length);
    conn.textContent = text;
    if (session.state === 'stopped' && session.reason === 'forbidden') {
      conn.append(' ', el('button', { type: 'button', class: 'link', onclick: () => location.reload() }, 'Reload'));
    }
  }

  function renderOnline() {
    replace(online, ...[...session.onlineUsers].map((id) => el('li', { dataset: { userId: id } }, nameOf(id))));
    const typists = [...session.typingUsers].filter((id) => id !== me).map(nameOf);
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
                replyingTo = editing = confirmDelete = null;
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
            if (!onAuthLost(e)) actionError.textContent = message(e);
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
    const filter = el('input', {
      type: 'checkbox',
      id: 'open-only',
      checked: openOnly,
      onchange: () => {
        openOnly = filter.checked;
        renderComments();
      },
    });
    parts.push(
      el('div', { class: 'inline comments-head' }, el('h3', {}, 'Comments'), el('label', { class: 'filter' }, filter, ' Open only')),
      commentList,
      typing,
      actionError,
    );
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
    const rangeText = el('span', { id: 'range', class: 'meta', 'aria-live': 'polite' });
    const showRange = () => {
      rangeText.textContent =
        range.start === null ? '' : range.end === null ? `Range from ${mmss(range.start)}` : `Range ${rangeLabel(range.start, range.end)}`;
    };
    showRange();
    const stamp = (/** @type {'start' | 'end'} */ which) => () => {
      if (!video) return;
      range[which] = video.currentTime;
      if (range.start !== null && range.end !== null && range.end < range.start) [range.start, range.end] = [range.end, range.start];
      showRange();
    };
    const rangeControls = video
      ? el(
          'p',
          { class: 'inline' },
          el('button', { type: 'button', id: 'mark-start', class: 'secondary', onclick: stamp('start') }, 'Mark start'),
          el('button', { type: 'button', id: 'mark-end', class: 'secondary', onclick: stamp('end') }, 'Mark end'),
          el('button', {
            type: 'button',
            id: 'clear-range',
            class: 'link',
            onclick: () => {
              range.start = range.end = null;
              showRange();
            },
          }, 'Clear range'),
          rangeText,
        )
      : null;
    const form = el(
      'form',
      {
        id: 'composer',
        onsubmit: (/** @type {SubmitEvent} */ ev) => {
          ev.preventDefault();
          const value = text.value.trim();
          if (!value) return;
          /** @type {import('../src/types.js').NewComment} */
          const c = { feedback_id: f.id, text: value, timestamp: video ? video.currentTime : (f.timestamp ?? null) };
          if (range.start !== null) {
            c.timestamp = range.start;
            if (range.end !== null) c.timestamp_end = range.end;
          }
          error.textContent = '';
          session
            .addComment(c)
            .catch((e) => {
              error.textContent = e.retryable ? `${e.message} (it will be sent again)` : e.message;
            })
            .finally(queueRender);
          text.value = '';
          range.start = range.end = null;
          showRange();
          queueRender();
        },
      },
      el('label', { for: 'comment-text' }, video ? 'Comment at the current video position (or the marked range)' : 'Comment'),
      text,
      rangeControls,
      el('button', { type: 'submit', id: 'post' }, 'Post'),
      error,
    );
    return form;
  }

  /** The comments of the selected item: roots in video order, each with its replies. */
  function renderComments() {
    if (!commentList || selected === null) return;
    const focus = rememberFocus(commentList);
    const mine = session.comments.filter((c) => c.feedback_id === selected);
    const held = new Set(mine.map((c) => c.id));
    const roots = mine
      .filter((c) => typeof c.parent_id !== 'number' || !held.has(c.parent_id))
      .filter((c) => !openOnly || !c.resolved_at)
      .sort((a, b) => (a.timestamp ?? Infinity) - (b.timestamp ?? Infinity) || a.id - b.id);
    const rows = roots.map((c) => threadRow(c));
    for (const w of session.waiting) {
      const wc = w.comment;
      if (!wc || wc.feedback_id !== selected) continue;
      // The broadcast of one's own comment can arrive just before its ack:
      // show it once, as stored, in that moment.
      const landed = mine.some((c) => c.user_id === me && c.text === wc.text && Date.parse(c.created) >= w.created - 2_000);
      if (landed) continue;
      rows.push(
        el(
          'li',
          { class: 'comment pending', dataset: { clientMsgId: w.client_msg_id } },
          el('span', { class: 'at' }, mmss(wc.timestamp)),
          ' ',
          el('span', { class: 'author' }, nameOf(me)),
          ' ',
          el('span', { class: 'text' }, wc.text),
          ' ',
          el('span', { class: 'badge' }, wc.parent_id ? 'reply waiting to send' : 'waiting to send'),
        ),
      );
    }
    if (!rows.length) rows.push(el('li', { class: 'empty' }, openOnly ? 'No open comments.' : 'No comments yet.'));
    replace(commentList, ...rows);
    focus();
  }

  /** A root with its replies (held, or read over REST) and its reply form. @param {Comment} root */
  function threadRow(root) {
    const byId = new Map((threads.get(root.id) ?? []).map((c) => [c.id, c]));
    for (const c of session.repliesOf(root.id)) byId.set(c.id, c);
    const replies = [...byId.values()].sort((a, b) => a.id - b.id);
    const count = Math.max(root.reply_count ?? 0, replies.length);
    const li = el(
      'li',
      { class: `comment root${root.resolved_at ? ' resolved' : ''}`, dataset: { commentId: root.id } },
      commentBody(root, true),
    );
    if (replies.length) {
      li.append(el('ol', { class: 'replies', 'aria-label': `Replies to ${nameOf(root.user_id)}` }, ...replies.map((c) => el('li', { class: 'comment reply', dataset: { commentId: c.id } }, commentBody(c, false)))));
    }
    if (count > replies.length) {
      li.append(
        el('button', {
          type: 'button',
          class: 'link more',
          dataset: { key: `${root.id}:more` },
          onclick: async () => {
            try {
              const t = await api(`/comments/${root.id}/thread`);
              threads.set(root.id, t.replies);
              queueRender();
            } catch (e) {
              if (!onAuthLost(e)) actionError.textContent = message(e);
            }
          },
        }, count - replies.length === 1 ? 'Show 1 more reply' : `Show ${count - replies.length} more replies`),
      );
    }
    if (replyingTo === root.id) li.append(replyForm(root));
    return li;
  }

  /** @param {Comment} c @param {boolean} isRoot */
  function commentBody(c, isRoot) {
    const deleted = !!c.deleted_at;
    const own = c.user_id === me;
    const body = el('div', { class: 'body' });
    if (isRoot) {
      const label = c.timestamp_end != null ? rangeLabel(c.timestamp, c.timestamp_end) : mmss(c.timestamp);
      body.append(
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
          label,
        ),
        ' ',
      );
    }
    body.append(el('span', { class: 'author' }, nameOf(c.user_id)), ' ');
    if (deleted) {
      body.append(el('span', { class: 'tombstone' }, 'comment deleted'));
      return body;
    }
    if (editing === c.id) {
      body.append(editForm(c));
      return body;
    }
    body.append(el('span', { class: 'text' }, c.text));
    if (c.edited_at) body.append(' ', el('span', { class: 'edited meta', title: `edited ${c.edited_at}` }, '(edited)'));
    if (c.resolved_at) {
      const by = c.resolved_by != null ? ` by ${nameOf(c.resolved_by)}` : '';
      body.append(' ', el('span', { class: 'badge resolved-mark' }, `Resolved${by}`));
    }
    const actions = el('span', { class: 'actions' });
    actions.append(...reactionButtons(c));
    if (canWrite && isRoot) {
      actions.append(
        action(c, 'reply', 'Reply', () => {
          replyingTo = c.id;
          queueRender();
          focusSoon(`${c.id}:reply-text`);
        }),
      );
    }
    if (own) {
      actions.append(
        action(c, 'edit', 'Edit', () => {
          editing = c.id;
          drafts.set(`${c.id}:edit-text`, c.text);
          queueRender();
          focusSoon(`${c.id}:edit-text`);
        }),
      );
    }
    if (own || canModerate) {
      if (confirmDelete === c.id) {
        actions.append(
          el('span', { class: 'confirm' }, 'Delete this comment?'),
          action(c, 'delete-yes', 'Yes, delete', () => {
            confirmDelete = null;
            run(session.deleteComment(c.id));
          }),
          action(c, 'delete-no', 'Keep it', () => {
            confirmDelete = null;
            queueRender();
          }),
        );
      } else {
        actions.append(
          action(c, 'delete', 'Delete', () => {
            confirmDelete = c.id;
            queueRender();
            focusSoon(`${c.id}:delete-no`);
          }),
        );
      }
    }
    if (canWrite && isRoot) {
      actions.append(
        c.resolved_at
          ? action(c, 'reopen', 'Reopen', () => run(session.reopenComment(c.id)))
          : action(c, 'resolve', 'Resolve', () => run(session.resolveComment(c.id))),
      );
    }
    body.append(' ', actions);
    return body;
  }

  /**
   * A small button acting on a comment; its label names the comment's author
   * for screen readers.
   * @param {Comment} c @param {string} key @param {string} label @param {() => void} onclick
   */
  function action(c, key, label, onclick) {
    return el('button', { type: 'button', class: `act ${key}`, dataset: { key: `${c.id}:${key}` }, 'aria-label': `${label} (comment by ${nameOf(c.user_id)})`, onclick }, label);
  }

  /** The reaction counts; members toggle their own. @param {Comment} c */
  function reactionButtons(c) {
    const list = session.reactionsOf(c.id);
    if (!list.some((r) => r.emoji === REACTION)) list.unshift({ emoji: REACTION, count: 0, mine: false });
    return list.map((r) =>
      canWrite
        ? el(
            'button',
            {
              type: 'button',
              class: 'react',
              dataset: { key: `${c.id}:react:${r.emoji}`, emoji: r.emoji },
              'aria-pressed': r.mine ? 'true' : 'false',
              'aria-label': `React ${r.emoji} to the comment by ${nameOf(c.user_id)} (${r.count})`,
              onclick: () => run(r.mine ? session.removeReaction(c.id, r.emoji) : session.addReaction(c.id, r.emoji)),
            },
            `${r.emoji} ${r.count}`,
          )
        : el('span', { class: 'react', dataset: { emoji: r.emoji } }, `${r.emoji} ${r.count}`),
    );
  }

  /** @param {Comment} root */
  function replyForm(root) {
    const key = `${root.id}:reply-text`;
    const id = `reply-text-${root.id}`;
    const text = el('textarea', {
      id,
      rows: 2,
      maxLength: 10000,
      required: true,
      value: drafts.get(key) ?? '',
      dataset: { key },
      oninput: () => {
        drafts.set(key, text.value);
        session.setTyping(text.value.length > 0);
      },
      onblur: () => session.setTyping(false),
    });
    const form = el(
      'form',
      {
        class: 'reply-form',
        onsubmit: (/** @type {SubmitEvent} */ ev) => {
          ev.preventDefault();
          const value = text.value.trim();
          if (!value) return;
          drafts.delete(key);
          replyingTo = null;
          run(session.addComment({ feedback_id: root.feedback_id, text: value, parent_id: root.id }));
        },
      },
      el('label', { for: id }, `Reply to ${nameOf(root.user_id)}`),
      text,
      el(
        'span',
        { class: 'inline' },
        el('button', { type: 'submit', dataset: { key: `${root.id}:reply-post` } }, 'Post reply'),
        el('button', {
          type: 'button',
          class: 'link',
          onclick: () => {
            drafts.delete(key);
            replyingTo = null;
            queueRender();
          },
        }, 'Cancel'),
      ),
    );
    return form;
  }

  /** @param {Comment} c */
  function editForm(c) {
    const key = `${c.id}:edit-text`;
    const id = `edit-text-${c.id}`;
    const text = el('textarea', {
      id,
      rows: 2,
      maxLength: 10000,
      required: true,
      value: drafts.get(key) ?? c.text,
      dataset: { key },
      oninput: () => drafts.set(key, text.value),
    });
    return el(
      'form',
      {
        class: 'edit-form',
        onsubmit: (/** @type {SubmitEvent} */ ev) => {
          ev.preventDefault();
          const value = text.value.trim();
          if (!value) return;
          drafts.delete(key);
          editing = null;
          if (value !== c.text) run(session.editComment(c.id, { text: value }));
          else queueRender();
        },
      },
      el('label', { for: id, class: 'visually-hidden' }, 'Edit your comment'),
      text,
      el(
        'span',
        { class: 'inline' },
        el('button', { type: 'submit', dataset: { key: `${c.id}:edit-save` } }, 'Save'),
        el('button', {
          type: 'button',
          class: 'link',
          onclick: () => {
            drafts.delete(key);
            editing = null;
            queueRender();
          },
        }, 'Cancel'),
      ),
    );
  }

  /** Focuses the element with `data-key` once the next render is done. @param {string} key */
  function focusSoon(key) {
    requestAnimationFrame(() => requestAnimationFrame(() => byKey(key)?.focus()));
  }

  /** @param {string} key @returns {HTMLElement | null} */
  function byKey(key) {
    return commentList?.querySelector(`[data-key="${CSS.escape(key)}"]`) ?? null;
  }

  /**
   * Remembers which control of the list has the focus (and where its caret
   * is), so a re-render puts it back on the control that replaced it.
   * @param {HTMLElement} list
   */
  function rememberFocus(list) {
    const active = document.activeElement;
    if (!(active instanceof HTMLElement) || !list.contains(active) || !active.dataset.key) return () => {};
    const key = active.dataset.key;
    const caret = active instanceof HTMLTextAreaElement ? [active.selectionStart, active.selectionEnd] : null;
    return () => {
      const next = byKey(key);
      if (!next) return;
      next.focus();
      if (caret && next instanceof HTMLTextAreaElement) next.setSelectionRange(caret[0], caret[1]);
    };
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
    session.on('change', queueRender),
    session.on('ack', queueRender),
    session.on('presence', renderOnline),
    session.on('typing', renderOnline),
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

/** A range of the video as `mm:ss–mm:ss`. @param {number | null | undefined} start @param {number | null | undefined} end */
function rangeLabel(start, end) {
  return `${mmss(start)}–${mmss(end)}`;
}

window.addEventListener('hashchange', route);
route();

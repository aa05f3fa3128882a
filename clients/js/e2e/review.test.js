// The review page in Debian's Chromium against the real server binary:
// two users in two browser contexts, a viewer in a third.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestServer, until } from '../test/helpers/server.js';
import { axe, launch, mediaServer, openProject, pageFromDisk, signIn, withShots } from './helpers.js';

describe('the review page', () => {
  let server;
  let media;
  let browser;
  let fx;
  /** A is an editor, B the owner, C a viewer. */
  let ctxA;
  let ctxB;
  let ctxC;
  let pageA;
  let pageB;
  const dialogs = [];
  const contexts = () => [ctxA, ctxB, ctxC];

  before(async () => {
    server = await TestServer.start({ args: ['--no-rate-limits'] });
    media = await mediaServer();
    fx = await server.fixture({ editors: 1, viewers: 1, videoUrl: media.url });
    browser = await launch();
    ctxA = await browser.newContext();
    ctxB = await browser.newContext();
    ctxC = await browser.newContext();
    for (const ctx of contexts()) {
      ctx.on('page', (p) => p.on('dialog', (d) => (dialogs.push(d.message()), d.dismiss())));
      await pageFromDisk(ctx, server.url);
    }
    pageA = await ctxA.newPage();
    pageB = await ctxB.newPage();
  });
  after(async () => {
    await browser?.close();
    media?.close();
    await server?.destroy();
  });

  const comments = (page) => page.locator('#comments li.comment:not(.pending) .text');
  const stored = async (text) => (await server.comments(fx.owner.access_token, fx.project.id)).filter((c) => c.text === text);

  test('sign in, the project list, the project, with no serious accessibility violation', async (t) => {
    await withShots(t, contexts, async () => {
      await pageA.goto(`${server.url}/`);
      assert.deepEqual(await axe(pageA), [], 'sign-in view');
      await signIn(pageA, server.url, fx.editors[0]);
      await pageA.getByRole('link', { name: 'Cut 3' }).waitFor();
      assert.deepEqual(await axe(pageA), [], 'project list');
      await openProject(pageA, server.url, fx.project.id);
      await pageA.locator('#feedback').getByText('Colour jumps').waitFor();
      assert.deepEqual(await axe(pageA), [], 'project view');
      await signIn(pageB, server.url, fx.owner);
      await openProject(pageB, server.url, fx.project.id);
    });
  });

  test('A types and B sees it; A posts and B sees the comment once; after a reload still once', async (t) => {
    await withShots(t, contexts, async () => {
      await pageA.locator('#comment-text').pressSequentially('The grade', { delay: 20 });
      await pageB.locator('#typing').getByText(/is typing/).waitFor();
      assert.match(await pageB.locator('#typing').textContent(), new RegExp(fx.editors[0].user.username));
      await pageA.getByRole('button', { name: 'Post' }).click();
      await comments(pageB).getByText('The grade', { exact: true }).waitFor();
      await pageB.locator('#typing').getByText(/is typing/).waitFor({ state: 'detached' }).catch(() => {});
      assert.equal(await comments(pageB).getByText('The grade', { exact: true }).count(), 1);
      await pageB.reload();
      await pageB.locator('#conn[data-state="live"]').waitFor();
      await comments(pageB).getByText('The grade', { exact: true }).waitFor();
      assert.equal(await comments(pageB).getByText('The grade', { exact: true }).count(), 1);
      assert.equal((await stored('The grade')).length, 1);
    });
  });

  test('a comment that looks like markup shows as text and runs nothing', async (t) => {
    await withShots(t, contexts, async () => {
      const evil = '<img src=x onerror=alert(1)>';
      await pageA.locator('#comment-text').fill(evil);
      await pageA.getByRole('button', { name: 'Post' }).click();
      await comments(pageB).getByText(evil, { exact: true }).waitFor();
      for (const page of [pageA, pageB]) {
        assert.equal(await page.locator('#comments img').count(), 0);
        assert.equal(await comments(page).getByText(evil, { exact: true }).count(), 1);
      }
      assert.deepEqual(dialogs, []);
    });
  });

  test('the video plays the item; a click seeks, a new comment is stamped with the position', async (t) => {
    await withShots(t, contexts, async () => {
      const video = pageA.locator('video#video');
      await video.waitFor();
      await pageA.waitForFunction(() => /** @type {HTMLVideoElement} */ (document.querySelector('#video')).readyState >= 1);
      await pageA.evaluate(() => {
        /** @type {HTMLVideoElement} */ (document.querySelector('#video')).currentTime = 7.5;
      });
      await pageA.locator('#comment-text').fill('at seven');
      await pageA.getByRole('button', { name: 'Post' }).click();
      const row = pageB.locator('#comments li.comment', { hasText: 'at seven' });
      await row.waitFor();
      assert.equal(await row.locator('.at').textContent(), '00:07');
      assert.equal((await stored('at seven'))[0].timestamp, 7.5);
      await pageB.waitForFunction(() => /** @type {HTMLVideoElement} */ (document.querySelector('#video')).readyState >= 1);
      await row.locator('button.at').click();
      await until(async () => (await pageB.evaluate(() => document.querySelector('video').currentTime)) === 7.5, 5_000, 'the seek');
    });
  });

  test('a reaction and a status change reach the other page', async (t) => {
    await withShots(t, contexts, async () => {
      const row = (page) => page.locator('#comments li.comment', { hasText: 'The grade' });
      await row(pageA).getByRole('button', { name: /React/ }).click();
      await row(pageB).locator('.react', { hasText: '1' }).waitFor();
      await pageB.getByLabel('Status').selectOption('in_progress');
      await pageA.locator('#feedback').getByText(/in progress/).waitFor();
      assert.equal(await pageA.getByLabel('Status').inputValue(), 'in_progress');
      const list = await server.rest(`/feedback/${fx.project.id}`, { token: fx.owner.access_token });
      assert.equal(list.results[0].status, 'in_progress');
    });
  });

  test('a viewer has no composer, and a forged send is refused', async (t) => {
    await withShots(t, contexts, async () => {
      const pageC = await ctxC.newPage();
      await signIn(pageC, server.url, fx.viewers[0]);
      await openProject(pageC, server.url, fx.project.id);
      await pageC.locator('#read-only').waitFor();
      assert.equal(await pageC.locator('#composer, #comment-text').count(), 0);
      const answer = await pageC.evaluate(
        ({ projectId, feedbackId }) =>
          new Promise((resolve) => {
            const token = JSON.parse(localStorage.getItem('vridge.auth')).access_token;
            const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws/feedback/${projectId}?token=${token}`);
            ws.onmessage = (ev) => {
              const m = JSON.parse(ev.data);
              if (m.type === 'initial_state') {
                ws.send(JSON.stringify({ type: 'comment_add', comment: { feedback_id: feedbackId, text: 'forged' }, client_msg_id: 'f1' }));
              } else if (m.type === 'error' || m.type === 'comment_ack') {
                resolve(m);
                ws.close();
              }
            };
          }),
        { projectId: fx.project.id, feedbackId: fx.feedback.id },
      );
      assert.equal(answer.type, 'error');
      assert.equal(answer.message, 'Permission denied');
      assert.equal((await stored('forged')).length, 0);
      await pageC.close();
    });
  });

  test('a server restart: both pages reconnect, then show what was posted meanwhile, once', async (t) => {
    await withShots(t, contexts, async () => {
      const sawReconnecting = [pageA, pageB].map((p) => p.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: 20_000 }));
      await server.restart();
      await Promise.all(sawReconnecting);
      await server.postComment(fx.owner.access_token, fx.feedback.id, 'posted during the restart');
      for (const page of [pageA, pageB]) {
        await page.locator('#conn[data-state="live"]').waitFor({ timeout: 20_000 });
        await comments(page).getByText('posted during the restart', { exact: true }).waitFor();
        assert.equal(await comments(page).getByText('posted during the restart', { exact: true }).count(), 1);
      }
    });
  });

  test('offline: a comment waits, survives the closed page, and is stored once when back', async (t) => {
    await withShots(t, contexts, async () => {
      await ctxA.setOffline(true);
      await pageA.locator('#conn[data-state="offline"]').waitFor();
      await pageA.locator('#comment-text').fill('written on the train');
      await pageA.getByRole('button', { name: 'Post' }).click();
      await pageA.locator('#comments li.pending', { hasText: 'written on the train' }).waitFor();
      await pageA.locator('#conn', { hasText: '1 comment waiting' }).waitFor();
      // In IndexedDB before the page goes.
      await until(
        () =>
          pageA.evaluate(
            () =>
              new Promise((resolve) => {
                const req = indexedDB.open('vridge-outbox');
                req.onsuccess = () => {
                  const r = req.result.transaction('entries').objectStore('entries').count();
                  r.onsuccess = () => resolve(r.result === 1);
                };
              }),
          ),
        5_000,
        'the outbox entry',
      );
      await pageA.close();
      assert.equal((await stored('written on the train')).length, 0);
      await ctxA.setOffline(false);
      pageA = await ctxA.newPage();
      await openProject(pageA, server.url, fx.project.id);
      await comments(pageA).getByText('written on the train', { exact: true }).waitFor();
      await comments(pageB).getByText('written on the train', { exact: true }).waitFor();
      await pageA.locator('#conn[data-waiting="0"]').waitFor();
      assert.equal((await stored('written on the train')).length, 1);
      assert.equal(await comments(pageB).getByText('written on the train', { exact: true }).count(), 1);
      assert.equal(await pageA.locator('#comments li.pending').count(), 0);
    });
  });

  // Issue 14: threads, edits, deletion, resolution, ranges, reaction removal.
  const row = (page, id) => page.locator(`#comments li.comment[data-comment-id="${id}"]`);
  const body = (page, id) => row(page, id).locator(':scope > .body');
  const thread = (id) => server.rest(`/comments/${id}/thread`, { token: fx.owner.access_token });

  test('a reply, an edit, a delete and a resolve made in one page appear in the other', async (t) => {
    await withShots(t, contexts, async () => {
      await pageA.locator('#comment-text').fill('Thread root');
      await pageA.getByRole('button', { name: 'Post' }).click();
      await comments(pageB).getByText('Thread root', { exact: true }).waitFor();
      const rootId = (await stored('Thread root'))[0].id;

      // B (the owner) replies; A sees the reply under the root.
      await body(pageB, rootId).getByRole('button', { name: /^Reply/ }).click();
      await row(pageB, rootId).getByLabel(/Reply to/).fill('A reply from B');
      await row(pageB, rootId).getByRole('button', { name: 'Post reply' }).click();
      const replyInA = row(pageA, rootId).locator('.replies li.comment', { hasText: 'A reply from B' });
      await replyInA.waitFor();
      const replies = (await thread(rootId)).replies;
      assert.deepEqual(replies.map((c) => [c.text, c.parent_id]), [['A reply from B', rootId]]);
      const replyId = replies[0].id;
      // A reply has no reply button, and A (an editor) cannot edit or delete B's reply.
      assert.equal(await body(pageA, replyId).getByRole('button', { name: /^(Reply|Edit|Delete)/ }).count(), 0);

      // A edits its root; B sees the new text, marked edited.
      await body(pageA, rootId).getByRole('button', { name: /^Edit/ }).click();
      const editor = body(pageA, rootId).locator('textarea');
      await editor.fill('Thread root, reworded');
      await body(pageA, rootId).getByRole('button', { name: 'Save' }).click();
      await body(pageB, rootId).locator('.text', { hasText: 'Thread root, reworded' }).waitFor();
      await body(pageB, rootId).locator('.edited').waitFor();
      assert.equal((await thread(rootId)).root.text, 'Thread root, reworded');

      // B deletes its reply (after confirming); A sees a tombstone, the thread stays.
      await body(pageB, replyId).getByRole('button', { name: /^Delete/ }).click();
      await body(pageB, replyId).getByRole('button', { name: /^Yes, delete/ }).click();
      await body(pageA, replyId).locator('.tombstone', { hasText: 'comment deleted' }).waitFor();
      assert.equal(await body(pageA, replyId).locator('.text').count(), 0);
      assert.equal(await comments(pageA).getByText('A reply from B').count(), 0);
      const gone = (await thread(rootId)).replies[0];
      assert.ok(gone.deleted_at);
      assert.equal(gone.text, '');

      // B resolves the root; A sees the marker, and "Open only" hides it.
      await body(pageB, rootId).getByRole('button', { name: /^Resolve/ }).click();
      await body(pageA, rootId).locator('.resolved-mark').waitFor();
      assert.equal(await body(pageA, rootId).locator('.resolved-mark').textContent(), `Resolved by ${fx.owner.user.username}`);
      await pageA.getByLabel('Open only').check();
      await row(pageA, rootId).waitFor({ state: 'detached' });
      await comments(pageA).getByText('The grade', { exact: true }).waitFor();
      await pageA.getByLabel('Open only').uncheck();
      await row(pageA, rootId).waitFor();
      // A reopens it; B sees it open again.
      await body(pageA, rootId).getByRole('button', { name: /^Reopen/ }).click();
      await body(pageB, rootId).locator('.resolved-mark').waitFor({ state: 'detached' });
      assert.equal((await thread(rootId)).root.resolved_at ?? null, null);
      assert.deepEqual(dialogs, []);
    });
  });

  test('a range is stamped from the video; a second click takes one\'s reaction back', async (t) => {
    await withShots(t, contexts, async () => {
      await pageA.waitForFunction(() => /** @type {HTMLVideoElement} */ (document.querySelector('#video')).readyState >= 1);
      const seek = (s) => pageA.evaluate((at) => { /** @type {HTMLVideoElement} */ (document.querySelector('#video')).currentTime = at; }, s);
      await seek(5.5);
      await pageA.getByRole('button', { name: 'Mark end' }).click();
      await seek(2);
      await pageA.getByRole('button', { name: 'Mark start' }).click();
      await pageA.locator('#range', { hasText: '00:02–00:05' }).waitFor();
      await pageA.locator('#comment-text').fill('over a range');
      await pageA.getByRole('button', { name: 'Post' }).click();
      await pageB.locator('#comments li.comment', { hasText: 'over a range' }).locator('.at', { hasText: '00:02–00:05' }).waitFor();
      const [ranged] = await stored('over a range');
      assert.deepEqual([ranged.timestamp, ranged.timestamp_end], [2, 5.5]);

      const react = (page, id) => body(page, id).locator('.react[data-emoji="👍"]');
      await react(pageA, ranged.id).click();
      await react(pageB, ranged.id).getByText('👍 1').waitFor();
      await pageA.locator(`#comments li[data-comment-id="${ranged.id}"] .react[aria-pressed="true"]`).waitFor();
      await react(pageA, ranged.id).click();
      await react(pageB, ranged.id).getByText('👍 0').waitFor();
      await pageA.locator(`#comments li[data-comment-id="${ranged.id}"] .react[aria-pressed="false"]`).waitFor();

      // A's reaction to "The grade" predates this page load: history has
      // its count, not whose it is. The first click is a no-op the server
      // acknowledges without an event, which tells the page it is A's; the
      // next one takes it back.
      const grade = (await stored('The grade'))[0].id;
      assert.equal(await react(pageA, grade).textContent(), '👍 1');
      assert.equal(await react(pageA, grade).getAttribute('aria-pressed'), 'false');
      await react(pageA, grade).click();
      await pageA.locator(`#comments li[data-comment-id="${grade}"] .react[aria-pressed="true"]`).waitFor();
      assert.equal(await react(pageB, grade).textContent(), '👍 1');
      await react(pageA, grade).click();
      await react(pageB, grade).getByText('👍 0').waitFor();
    });
  });

  test('a viewer reads threads, tombstones and counts, and gets no control to change them', async (t) => {
    await withShots(t, contexts, async () => {
      const pageC = await ctxC.newPage();
      await openProject(pageC, server.url, fx.project.id);
      const rootId = (await stored('Thread root, reworded'))[0].id;
      await row(pageC, rootId).locator('.tombstone', { hasText: 'comment deleted' }).waitFor();
      await body(pageC, rootId).locator('.edited').waitFor();
      await pageC.getByLabel('Status').locator('option[value="closed"]').waitFor({ state: 'attached' });
      assert.equal(await pageC.getByLabel('Status').isDisabled(), true);
      assert.equal(await pageC.locator('#comments button.act, #comments button.react, #comments form').count(), 0);
      assert.ok((await pageC.locator('#comments span.react').count()) > 0);
      await pageC.close();
    });
  });
});

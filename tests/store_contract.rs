//! One store contract, run against both engines: every test below runs on
//! a fresh SQLite file and on a fresh PostgreSQL database (created on the
//! server at `TEST_DATABASE_URL`, dropped afterwards).

mod common;

use std::sync::Arc;

use common::services::TestDatabase;
use vridge_protocol::{CommentEdit, NewComment, ServerMessage};
use vridge_realtime::domain::{Emoji, IdempotencyKey, Role, ValidComment, ValidEdit};
use vridge_realtime::store::{
    ChangeError, ChangeOutcome, ChangeRequest, CommentChange, CommentRequest, NewFeedback, NewUser,
    Store, StoreError,
};

/// A store on a fresh database, and what keeps that database alive.
struct Fresh {
    store: Store,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<TestDatabase>,
}

async fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("contract.db").display());
    Fresh {
        store: Store::connect(&url, 4).await.unwrap(),
        _sqlite: Some(dir),
        _postgres: None,
    }
}

async fn postgres() -> Fresh {
    let db = TestDatabase::create().await;
    Fresh {
        store: Store::connect(&db.url, 8).await.unwrap(),
        _sqlite: None,
        _postgres: Some(db),
    }
}

/// Runs each contract test on both engines.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fresh = super::sqlite().await;
                super::$name(&fresh.store).await;
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fresh = super::postgres().await;
                super::$name(&fresh.store).await;
            })*
        }
    };
}

contract!(
    a_batch_is_stored_with_one_outcome_per_request_in_request_order,
    duplicates_within_one_batch_are_stored_once,
    duplicates_across_batches_return_the_original,
    latest_comments_are_the_newest_oldest_first,
    comments_since_is_exclusive_ordered_limited_and_per_project,
    a_reaction_is_stored_once_per_comment_user_and_emoji,
    every_change_is_one_event_numbered_without_holes_per_project,
    changes_follow_authorship_and_a_keyed_retry_is_one_event,
    replies_form_one_level_threads,
    member_role_answers_members_only,
    member_roles_answers_many_pairs_at_once_as_member_role_does,
    latest_comments_of_answers_many_projects_at_once_as_latest_comments_does,
    a_taken_email_or_membership_is_a_conflict,
    feedback_belongs_to_its_project,
    comment_ids_become_visible_in_id_order_under_concurrent_writers,
    events_become_visible_in_seq_order_under_concurrent_writers_of_every_kind,
    each_comment_links_to_the_previous_comment_of_its_project,
);

struct World {
    project: i64,
    other_project: i64,
    users: Vec<i64>,
    feedback: i64,
    other_feedback: i64,
}

async fn world(store: &Store) -> World {
    let mut users = Vec::new();
    for name in ["ann", "bob", "cat"] {
        let email = format!("{name}@contract.test");
        let user = store
            .create_user(&NewUser {
                email: &email,
                username: name,
                password_hash: None,
            })
            .await
            .unwrap();
        users.push(user.id);
    }
    let project = store.create_project(users[0], "P", "").await.unwrap().id;
    let other_project = store.create_project(users[0], "Q", "").await.unwrap().id;
    store
        .add_member(project, users[1], Role::Editor)
        .await
        .unwrap();
    let feedback = new_feedback(store, project, users[0]).await;
    let other_feedback = new_feedback(store, other_project, users[0]).await;
    World {
        project,
        other_project,
        users,
        feedback,
        other_feedback,
    }
}

async fn new_feedback(store: &Store, project: i64, user: i64) -> i64 {
    store
        .create_feedback(&NewFeedback {
            project_id: project,
            created_by: user,
            title: "Intro",
            priority: "high",
            timestamp: Some(2.0),
            video_url: None,
        })
        .await
        .unwrap()
        .0
        .id
}

fn request(w: &World, user: i64, text: &str, key: Option<&str>) -> CommentRequest {
    request_in(w.project, w.feedback, user, text, key)
}

fn request_in(
    project: i64,
    feedback: i64,
    user: i64,
    text: &str,
    key: Option<&str>,
) -> CommentRequest {
    CommentRequest {
        project_id: project,
        user_id: user,
        comment: ValidComment::parse(NewComment {
            feedback_id: feedback,
            text: text.into(),
            title: Some("t".into()),
            section: None,
            security: None,
            timestamp: Some(1.25),
            ..Default::default()
        })
        .unwrap(),
        key: IdempotencyKey::from_client(key).unwrap(),
        parent: None,
    }
}

async fn a_batch_is_stored_with_one_outcome_per_request_in_request_order(store: &Store) {
    let w = world(store).await;
    let batch: Vec<_> = (0..5)
        .map(|i| request(&w, w.users[i % 2], &format!("c{i}"), None))
        .collect();
    let out = store.insert_comments(&batch).await.unwrap();
    let texts: Vec<&str> = out.iter().map(|o| o.comment.text.as_str()).collect();
    assert_eq!(texts, ["c0", "c1", "c2", "c3", "c4"]);
    assert!(out.iter().all(|o| !o.duplicate));
    let ids: Vec<i64> = out.iter().map(|o| o.comment.id).collect();
    assert!(
        ids.windows(2).all(|p| p[0] < p[1]),
        "ids follow request order: {ids:?}"
    );
    let first = &out[0].comment;
    assert_eq!(
        (first.project_id, first.feedback_id, first.user_id),
        (w.project, w.feedback, w.users[0])
    );
    assert_eq!(
        (first.title.as_deref(), first.timestamp),
        (Some("t"), Some(1.25))
    );
    assert!(store.insert_comments(&[]).await.unwrap().is_empty());
}

async fn duplicates_within_one_batch_are_stored_once(store: &Store) {
    let w = world(store).await;
    let batch = vec![
        request(&w, w.users[0], "first", Some("k1")),
        request(&w, w.users[0], "retry", Some("k1")),
        // Same key, other user: a different comment.
        request(&w, w.users[1], "bob's", Some("k1")),
        request(&w, w.users[0], "third", Some("k1")),
    ];
    let out = store.insert_comments(&batch).await.unwrap();
    assert_eq!(
        out.iter().map(|o| o.duplicate).collect::<Vec<_>>(),
        [false, true, false, true]
    );
    assert_eq!(
        out[1].comment, out[0].comment,
        "a duplicate returns the original"
    );
    assert_eq!(out[3].comment.text, "first");
    assert_eq!(out[2].comment.text, "bob's");
    assert_eq!(store.latest_comments(w.project, 50).await.unwrap().len(), 2);
}

async fn duplicates_across_batches_return_the_original(store: &Store) {
    let w = world(store).await;
    let first = store
        .insert_comments(&[request(&w, w.users[0], "orig", Some("m-1"))])
        .await
        .unwrap();
    let again = store
        .insert_comments(&[
            request(&w, w.users[1], "new", None),
            request(&w, w.users[0], "changed text", Some("m-1")),
        ])
        .await
        .unwrap();
    assert!(!again[0].duplicate);
    assert!(again[1].duplicate);
    assert_eq!(again[1].comment, first[0].comment);
    let stored = store.latest_comments(w.project, 50).await.unwrap();
    assert_eq!(
        stored.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
        ["orig", "new"]
    );
}

/// Stores `count` comments `{prefix}0..` in P (one batch), then `other` in Q.
async fn seed_both_projects(store: &Store, w: &World, count: usize, prefix: &str, other: &str) {
    let batch: Vec<_> = (0..count)
        .map(|i| request(w, w.users[0], &format!("{prefix}{i}"), None))
        .collect();
    store.insert_comments(&batch).await.unwrap();
    store
        .insert_comments(&[request_in(
            w.other_project,
            w.other_feedback,
            w.users[0],
            other,
            None,
        )])
        .await
        .unwrap();
}

async fn latest_comments_are_the_newest_oldest_first(store: &Store) {
    let w = world(store).await;
    assert!(
        store
            .latest_comments(w.project, 20)
            .await
            .unwrap()
            .is_empty()
    );
    seed_both_projects(store, &w, 30, "c", "elsewhere").await;
    let latest = store.latest_comments(w.project, 20).await.unwrap();
    let texts: Vec<String> = latest.iter().map(|c| c.text.clone()).collect();
    let expected: Vec<String> = (10..30).map(|i| format!("c{i}")).collect();
    assert_eq!(texts, expected);
}

async fn comments_since_is_exclusive_ordered_limited_and_per_project(store: &Store) {
    let w = world(store).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let out = store
            .insert_comments(&[
                request(&w, w.users[0], &format!("c{i}"), None),
                request_in(w.other_project, w.other_feedback, w.users[0], "x", None),
            ])
            .await
            .unwrap();
        ids.push(out[0].comment.id);
    }
    let since = store.comments_since(w.project, ids[3], 100).await.unwrap();
    assert_eq!(
        since.iter().map(|c| c.id).collect::<Vec<_>>(),
        ids[4..].to_vec()
    );
    let limited = store.comments_since(w.project, ids[3], 2).await.unwrap();
    assert_eq!(
        limited.iter().map(|c| c.id).collect::<Vec<_>>(),
        ids[4..6].to_vec()
    );
    assert!(
        store
            .comments_since(w.project, ids[9], 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.comments_since(w.project, 0, 100).await.unwrap().len(),
        10
    );
    assert_eq!(
        store
            .comment_ref(ids[0])
            .await
            .unwrap()
            .map(|r| r.project_id),
        Some(w.project)
    );
    assert_eq!(store.comment_ref(i64::MAX).await.unwrap(), None);
}

/// One change by `actor` (with `role`) to comment `id` of the world's project.
fn change(w: &World, actor: i64, role: Role, id: i64, change: CommentChange) -> ChangeRequest {
    ChangeRequest {
        project: w.project,
        actor,
        role,
        comment: id,
        change,
        key: None,
    }
}

/// The event number of an applied change.
fn applied_seq(outcome: Result<ChangeOutcome, ChangeError>) -> i64 {
    match outcome {
        Ok(ChangeOutcome::Applied(msg)) => msg.seq().expect("an applied change is an event"),
        other => panic!("expected an applied change, got {other:?}"),
    }
}

async fn a_reaction_is_stored_once_per_comment_user_and_emoji(store: &Store) {
    let w = world(store).await;
    let c = store
        .insert_comments(&[request(&w, w.users[0], "react", None)])
        .await
        .unwrap()[0]
        .comment
        .id;
    let thumbs = || CommentChange::React(Emoji::parse("👍").unwrap());
    let heart = CommentChange::React(Emoji::parse("❤️").unwrap());
    let first = store
        .change_comment(&change(&w, w.users[1], Role::Editor, c, thumbs()))
        .await
        .unwrap();
    let ChangeOutcome::Applied(first) = first else {
        panic!("expected a reaction, got {first:?}");
    };
    let ServerMessage::Reaction {
        reaction, user_id, ..
    } = *first
    else {
        panic!("expected a reaction, got {first:?}");
    };
    assert_eq!(
        (
            reaction.comment_id,
            reaction.user_id,
            reaction.emoji.as_str(),
            user_id
        ),
        (c, w.users[1], "👍", w.users[1])
    );
    assert_eq!(
        store
            .change_comment(&change(&w, w.users[1], Role::Editor, c, thumbs()))
            .await
            .unwrap(),
        ChangeOutcome::Unchanged,
        "the same reaction again changes nothing"
    );
    applied_seq(
        store
            .change_comment(&change(&w, w.users[1], Role::Editor, c, heart))
            .await,
    );
    applied_seq(
        store
            .change_comment(&change(&w, w.users[0], Role::Owner, c, thumbs()))
            .await,
    );
    // A reaction to a comment that does not exist, or of another project, is refused.
    assert!(matches!(
        store
            .change_comment(&change(&w, w.users[0], Role::Owner, i64::MAX, thumbs()))
            .await,
        Err(ChangeError::NotFound)
    ));
    let (counts, _) = store
        .comments_since_with_seq(w.project, 0, 10)
        .await
        .unwrap();
    let counts: Vec<(String, u32)> = counts[0]
        .reactions
        .iter()
        .map(|r| (r.emoji.clone(), r.count))
        .collect();
    assert_eq!(counts, vec![("❤️".into(), 1), ("👍".into(), 2)]);
    let unreact = CommentChange::Unreact(Emoji::parse("👍").unwrap());
    applied_seq(
        store
            .change_comment(&change(&w, w.users[1], Role::Editor, c, unreact.clone()))
            .await,
    );
    assert_eq!(
        store
            .change_comment(&change(&w, w.users[1], Role::Editor, c, unreact))
            .await
            .unwrap(),
        ChangeOutcome::Unchanged,
        "only one's own reaction, and only once"
    );
}

/// Every durable change is one event, numbered 1, 2, 3, … per project with
/// no hole, whatever its kind; a replay reads them back in order, showing
/// each entity as it is now.
async fn every_change_is_one_event_numbered_without_holes_per_project(store: &Store) {
    let w = world(store).await;
    // `world` created one feedback item in each project: event 1 of each.
    assert_eq!(store.last_seq(w.project).await.unwrap(), Some(1));
    assert_eq!(store.last_seq(w.other_project).await.unwrap(), Some(1));
    let out = store
        .insert_comments(&[
            request(&w, w.users[0], "one", None),
            request(&w, w.users[1], "two", None),
            request_in(
                w.other_project,
                w.other_feedback,
                w.users[0],
                "elsewhere",
                None,
            ),
        ])
        .await
        .unwrap();
    let seqs: Vec<i64> = out.iter().map(|o| o.event.as_ref().unwrap().seq).collect();
    assert_eq!(seqs, vec![2, 3, 2]);
    let (first, second) = (out[0].comment.id, out[1].comment.id);
    let edit = ValidEdit::parse(CommentEdit {
        comment_id: first,
        text: "one, corrected".into(),
        title: None,
        section: None,
    })
    .unwrap();
    assert_eq!(
        applied_seq(
            store
                .change_comment(&change(
                    &w,
                    w.users[0],
                    Role::Owner,
                    first,
                    CommentChange::Edit(edit)
                ))
                .await
        ),
        4
    );
    assert_eq!(
        applied_seq(
            store
                .change_comment(&change(
                    &w,
                    w.users[1],
                    Role::Editor,
                    second,
                    CommentChange::Resolve
                ))
                .await
        ),
        5
    );
    let (_, status) = store
        .update_feedback(w.feedback, w.users[1], Some("closed"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.seq, 6);
    assert_eq!(
        applied_seq(
            store
                .change_comment(&change(
                    &w,
                    w.users[1],
                    Role::Editor,
                    second,
                    CommentChange::Delete
                ))
                .await
        ),
        7
    );
    assert_eq!(store.last_seq(w.project).await.unwrap(), Some(7));

    let page = store.events_since(w.project, 0, 100).await.unwrap();
    assert!(!page.more);
    let kinds: Vec<(i64, i64, &str)> = page
        .events
        .iter()
        .map(|m| {
            let e = m.event().unwrap();
            let kind = match m {
                ServerMessage::FeedbackCreated { .. } => "feedback_created",
                ServerMessage::Comment { .. } => "comment",
                ServerMessage::CommentEdited { .. } => "comment_edited",
                ServerMessage::CommentResolved { .. } => "comment_resolved",
                ServerMessage::StatusChanged { .. } => "status_changed",
                ServerMessage::CommentDeleted { .. } => "comment_deleted",
                _ => "other",
            };
            (e.seq, e.prev_seq, kind)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, 0, "feedback_created"),
            (2, 1, "comment"),
            (3, 2, "comment"),
            (4, 3, "comment_edited"),
            (5, 4, "comment_resolved"),
            (6, 5, "status_changed"),
            (7, 6, "comment_deleted"),
        ]
    );
    // Entities as they are now: the first comment's `comment` event shows
    // its edit; the deleted one's text is gone from every event of it.
    let ServerMessage::Comment { comment, .. } = &page.events[1] else {
        unreachable!()
    };
    assert_eq!(comment.text, "one, corrected");
    assert!(comment.edited_at.is_some());
    for m in &page.events[2..] {
        if let ServerMessage::Comment { comment, .. }
        | ServerMessage::CommentResolved { comment, .. }
        | ServerMessage::CommentDeleted { comment, .. } = m
            && comment.id == second
        {
            assert_eq!(comment.text, "", "a deleted comment's text is gone");
            assert!(comment.deleted_at.is_some());
        }
    }
    let ServerMessage::StatusChanged { status, .. } = &page.events[5] else {
        unreachable!()
    };
    assert_eq!(status, "closed");
    // Paging: after 3, two at a time.
    let page = store.events_since(w.project, 3, 2).await.unwrap();
    assert!(page.more);
    let seqs: Vec<i64> = page.events.iter().filter_map(ServerMessage::seq).collect();
    assert_eq!(seqs, vec![4, 5]);
    // The other project's log is its own.
    let other = store.events_since(w.other_project, 0, 100).await.unwrap();
    assert_eq!(other.events.len(), 2);
}

/// Who may change what: only the author edits; the author or an admin
/// deletes; a deleted comment takes no further change; a keyed retry finds
/// the event its first attempt made; an edit keeps the earlier version,
/// and a deletion removes them.
async fn changes_follow_authorship_and_a_keyed_retry_is_one_event(store: &Store) {
    let w = world(store).await;
    let id = store
        .insert_comments(&[request(&w, w.users[1], "by bob", None)])
        .await
        .unwrap()[0]
        .comment
        .id;
    let edit = |text: &str| {
        CommentChange::Edit(
            ValidEdit::parse(CommentEdit {
                comment_id: id,
                text: text.into(),
                title: Some("new title".into()),
                section: None,
            })
            .unwrap(),
        )
    };
    assert!(matches!(
        store
            .change_comment(&change(&w, w.users[0], Role::Owner, id, edit("not mine")))
            .await,
        Err(ChangeError::Forbidden)
    ));
    let mut keyed = change(&w, w.users[1], Role::Editor, id, edit("bob again"));
    keyed.key = IdempotencyKey::of_command(Some("edit-1")).unwrap();
    let seq = applied_seq(store.change_comment(&keyed).await);
    assert_eq!(
        store.change_comment(&keyed).await.unwrap(),
        ChangeOutcome::Duplicate(seq),
        "a retry with the same key is the same event"
    );
    assert_eq!(store.last_seq(w.project).await.unwrap(), Some(seq));
    let versions = store.comment_versions(id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        (
            versions[0].version,
            versions[0].text.as_str(),
            versions[0].title.as_deref()
        ),
        (1, "by bob", Some("t"))
    );
    let (root, replies) = store.thread(id).await.unwrap().unwrap();
    assert_eq!(
        (root.text.as_str(), root.title.as_deref()),
        ("bob again", Some("new title"))
    );
    assert!(replies.is_empty());
    // An editor may not delete another's comment; an admin may.
    assert!(matches!(
        store
            .change_comment(&change(
                &w,
                w.users[2],
                Role::Editor,
                id,
                CommentChange::Delete
            ))
            .await,
        Err(ChangeError::Forbidden)
    ));
    applied_seq(
        store
            .change_comment(&change(
                &w,
                w.users[2],
                Role::Admin,
                id,
                CommentChange::Delete,
            ))
            .await,
    );
    assert!(
        store.comment_versions(id).await.unwrap().is_empty(),
        "the text is gone with its versions"
    );
    assert_eq!(
        store
            .change_comment(&change(
                &w,
                w.users[1],
                Role::Editor,
                id,
                CommentChange::Delete
            ))
            .await
            .unwrap(),
        ChangeOutcome::Unchanged
    );
    for after in [edit("too late"), CommentChange::Resolve] {
        assert!(matches!(
            store
                .change_comment(&change(&w, w.users[1], Role::Editor, id, after))
                .await,
            Err(ChangeError::NotFound)
        ));
    }
    // Resolve and reopen are editors' and up, once each.
    let other = store
        .insert_comments(&[request(&w, w.users[0], "resolve me", None)])
        .await
        .unwrap()[0]
        .comment
        .id;
    assert!(matches!(
        store
            .change_comment(&change(
                &w,
                w.users[2],
                Role::Viewer,
                other,
                CommentChange::Resolve
            ))
            .await,
        Err(ChangeError::Forbidden)
    ));
    applied_seq(
        store
            .change_comment(&change(
                &w,
                w.users[1],
                Role::Editor,
                other,
                CommentChange::Resolve,
            ))
            .await,
    );
    assert_eq!(
        store
            .change_comment(&change(
                &w,
                w.users[1],
                Role::Editor,
                other,
                CommentChange::Resolve
            ))
            .await
            .unwrap(),
        ChangeOutcome::Unchanged
    );
    let open = store
        .feedback_comments(w.feedback, None, 10, true)
        .await
        .unwrap();
    assert!(
        open.iter().all(|c| c.id != other),
        "resolved ones are filtered out"
    );
    applied_seq(
        store
            .change_comment(&change(
                &w,
                w.users[1],
                Role::Editor,
                other,
                CommentChange::Reopen,
            ))
            .await,
    );
    let open = store
        .feedback_comments(w.feedback, None, 10, true)
        .await
        .unwrap();
    assert!(open.iter().any(|c| c.id == other));
}

/// Replies attach to their root; history lists roots with reply counts; a
/// thread reads whole from any of its comments.
async fn replies_form_one_level_threads(store: &Store) {
    let w = world(store).await;
    let root = store
        .insert_comments(&[request(&w, w.users[0], "root", None)])
        .await
        .unwrap()[0]
        .comment
        .id;
    let mut reply = request(&w, w.users[1], "reply", None);
    reply.parent = Some(root);
    let mut second = request(&w, w.users[0], "second reply", None);
    second.parent = Some(root);
    let out = store.insert_comments(&[reply, second]).await.unwrap();
    assert_eq!(out[0].comment.parent_id, Some(root));
    let history = store
        .feedback_comments(w.feedback, None, 10, false)
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "replies are read with their thread");
    assert_eq!((history[0].id, history[0].reply_count), (root, 2));
    let (thread_root, replies) = store.thread(out[1].comment.id).await.unwrap().unwrap();
    assert_eq!(thread_root.id, root);
    let texts: Vec<&str> = replies.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, vec!["reply", "second reply"]);
    let newest = store.latest_comments_of(&[w.project], 20).await.unwrap();
    let newest = &newest[&w.project];
    assert_eq!(newest.comments.len(), 3, "initial_state shows replies too");
    assert_eq!(newest.comments[0].reply_count, 2);
    assert_eq!(newest.last_seq, 4);
}

async fn member_role_answers_members_only(store: &Store) {
    let w = world(store).await;
    assert_eq!(
        store.member_role(w.project, w.users[0]).await.unwrap(),
        Some(Role::Owner)
    );
    assert_eq!(
        store.member_role(w.project, w.users[1]).await.unwrap(),
        Some(Role::Editor)
    );
    assert_eq!(
        store.member_role(w.project, w.users[2]).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .member_role(w.other_project, w.users[1])
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.member_role(i64::MAX, w.users[0]).await.unwrap(), None);
}

async fn member_roles_answers_many_pairs_at_once_as_member_role_does(store: &Store) {
    let w = world(store).await;
    assert!(store.member_roles(&[]).await.unwrap().is_empty());
    let mut pairs = Vec::new();
    for project in [w.project, w.other_project, i64::MAX] {
        for user in &w.users {
            pairs.push((project, *user));
        }
    }
    // Repeated pairs, and more pairs than one statement takes.
    let many: Vec<_> = pairs.iter().copied().cycle().take(450).collect();
    let roles = store.member_roles(&many).await.unwrap();
    for (project, user) in pairs {
        assert_eq!(
            roles.get(&(project, user)).copied(),
            store.member_role(project, user).await.unwrap(),
            "project {project}, user {user}"
        );
    }
    assert_eq!(roles.len(), 3, "owner and editor of P, owner of Q");
}

async fn latest_comments_of_answers_many_projects_at_once_as_latest_comments_does(store: &Store) {
    let w = world(store).await;
    seed_both_projects(store, &w, 25, "p", "q0").await;
    // 250 distinct projects (two queries), most of them without comments.
    let mut projects = vec![w.project, w.other_project];
    projects.extend((1..=248).map(|i| i64::MAX - i));
    let newest = store.latest_comments_of(&projects, 20).await.unwrap();
    assert_eq!(
        newest.len(),
        projects.len(),
        "every project asked for is answered"
    );
    for project in [w.project, w.other_project, i64::MAX - 1] {
        assert_eq!(
            newest[&project].comments,
            store.latest_comments(project, 20).await.unwrap(),
            "project {project}"
        );
        assert_eq!(
            newest[&project].last_seq,
            store.last_seq(project).await.unwrap().unwrap_or(0),
            "project {project}"
        );
    }
    assert_eq!(newest[&w.project].comments.len(), 20);
    assert_eq!(
        newest[&w.project].comments[0].text, "p5",
        "oldest of the newest 20 first"
    );
    assert!(newest[&(i64::MAX - 248)].comments.is_empty());
}

async fn a_taken_email_or_membership_is_a_conflict(store: &Store) {
    let w = world(store).await;
    let again = store
        .create_user(&NewUser {
            email: "ann@contract.test",
            username: "other ann",
            password_hash: Some("$argon2id$fake"),
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    let user = store
        .user_by_email("ann@contract.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((user.id, user.username.as_str()), (w.users[0], "ann"));
    assert!(
        store
            .user_by_email("nobody@contract.test")
            .await
            .unwrap()
            .is_none()
    );
    let twice = store.add_member(w.project, w.users[1], Role::Viewer).await;
    assert!(matches!(twice, Err(StoreError::Conflict)), "{twice:?}");
    assert_eq!(
        store.member_role(w.project, w.users[1]).await.unwrap(),
        Some(Role::Editor)
    );
}

async fn feedback_belongs_to_its_project(store: &Store) {
    let w = world(store).await;
    assert_eq!(
        store.feedback_project(w.feedback).await.unwrap(),
        Some(w.project)
    );
    assert_eq!(
        store.feedback_project(w.other_feedback).await.unwrap(),
        Some(w.other_project)
    );
    assert_eq!(store.feedback_project(i64::MAX).await.unwrap(), None);
    let second = new_feedback(store, w.project, w.users[0]).await;
    assert_eq!(
        store.feedback_ids(w.project).await.unwrap(),
        vec![w.feedback, second]
    );
}

/// Two writers (as two nodes would) insert into one project while a reader
/// follows with "everything after the newest id I have read". If a lower id
/// could become visible after a higher one, the reader would skip it.
/// Writers of every kind at once — comment batches spanning both projects,
/// reactions, status changes — and a reader following the log by `seq`:
/// the reader sees every number once with no hole (a lower number never
/// commits after a higher one is visible), and comment events keep id order.
async fn events_become_visible_in_seq_order_under_concurrent_writers_of_every_kind(store: &Store) {
    let w = Arc::new(world(store).await);
    let target = store
        .insert_comments(&[request(&w, w.users[0], "target", None)])
        .await
        .unwrap()[0]
        .comment
        .id;
    let mut writers = Vec::new();
    for n in 0..2 {
        let (store, w) = (store.clone(), w.clone());
        writers.push(tokio::spawn(async move {
            for round in 0..30 {
                let batch = vec![
                    request(&w, w.users[n], &format!("c{n}-{round}"), None),
                    request_in(w.other_project, w.other_feedback, w.users[0], "o", None),
                    request(&w, w.users[n], &format!("d{n}-{round}"), None),
                ];
                store.insert_comments(&batch).await.unwrap();
            }
        }));
    }
    {
        let (store, w) = (store.clone(), w.clone());
        writers.push(tokio::spawn(async move {
            for round in 0..30 {
                let emoji = Emoji::parse(&format!("e{round}")).unwrap();
                let req = change(
                    &w,
                    w.users[1],
                    Role::Editor,
                    target,
                    CommentChange::React(emoji),
                );
                applied_seq(store.change_comment(&req).await);
                let status = if round % 2 == 0 { "closed" } else { "open" };
                store
                    .update_feedback(w.feedback, w.users[1], Some(status), None)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }));
    }
    let reader = {
        let (store, w) = (store.clone(), w.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let (mut since, mut idle) = (0, 0);
            while idle < 50 {
                let page = store.events_since(w.project, since, 1000).await.unwrap();
                if page.events.is_empty() {
                    idle += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                }
                idle = 0;
                for e in &page.events {
                    let seq = e.seq().unwrap();
                    assert_eq!(seq, since + 1, "no hole after {since}");
                    since = seq;
                    seen.push(e.clone());
                }
            }
            seen
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    let seen = reader.await.unwrap();
    // The world's feedback item, the target, 2 x 30 x 2 comments, 30
    // reactions and 30 status changes.
    assert_eq!(seen.len(), 2 + 120 + 60);
    assert_eq!(store.last_seq(w.project).await.unwrap(), Some(182));
    let comment_ids: Vec<i64> = seen
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Comment { comment, .. } => Some(comment.id),
            _ => None,
        })
        .collect();
    assert!(
        comment_ids.windows(2).all(|p| p[0] < p[1]),
        "comments in id order"
    );
    let other = store.events_since(w.other_project, 0, 1000).await.unwrap();
    let seqs: Vec<i64> = other.events.iter().filter_map(ServerMessage::seq).collect();
    assert_eq!(seqs, (1..=61).collect::<Vec<i64>>());
}

async fn comment_ids_become_visible_in_id_order_under_concurrent_writers(store: &Store) {
    let w = Arc::new(world(store).await);
    let writers: Vec<_> = (0..3)
        .map(|n| {
            let store = store.clone();
            let w = w.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for round in 0..40 {
                    let batch: Vec<_> = (0..(1 + round % 4))
                        .map(|i| request(&w, w.users[n % 2], &format!("w{n}-{round}-{i}"), None))
                        .collect();
                    for out in store.insert_comments(&batch).await.unwrap() {
                        ids.push(out.comment.id);
                    }
                }
                ids
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        let w = w.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut since = 0;
            let mut idle = 0;
            while idle < 50 {
                let page = store.comments_since(w.project, since, 1000).await.unwrap();
                if page.is_empty() {
                    idle += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                }
                idle = 0;
                since = page.last().unwrap().id;
                seen.extend(page.into_iter().map(|c| c.id));
            }
            seen
        })
    };
    let mut written = Vec::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    written.sort_unstable();
    let seen = reader.await.unwrap();
    assert_eq!(
        seen, written,
        "the following reader saw every id exactly once"
    );
    let stored = store.comments_since(w.project, 0, 10_000).await.unwrap();
    let mut expected_prev = None;
    for c in &stored {
        assert_eq!(
            c.prev_id, expected_prev,
            "comment {} links to its predecessor",
            c.id
        );
        expected_prev = Some(c.id);
    }
}

/// The indexes the product's queries need exist on both engines.
#[tokio::test]
async fn both_engines_have_the_indexes_the_queries_need() {
    let expected = [
        "comments_project_id",
        "comments_feedback_created",
        "comments_idempotency",
        "feedback_project_status_created",
        "feedback_open",
        "users_email",
    ];
    let lite = sqlite().await;
    let Store::Sqlite(pool) = &lite.store else {
        unreachable!()
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index'")
            .fetch_all(pool)
            .await
            .unwrap();
    for index in expected {
        assert!(names.iter().any(|n| n == index), "sqlite lacks {index}");
    }
    let pg = postgres().await;
    let Store::Postgres(pool) = &pg.store else {
        unreachable!()
    };
    let defs: Vec<(String, String)> =
        sqlx::query_as("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
            .fetch_all(pool)
            .await
            .unwrap();
    for index in expected {
        assert!(
            defs.iter().any(|(n, _)| n == index),
            "postgres lacks {index}"
        );
    }
    let open = defs.iter().find(|(n, _)| n == "feedback_open").unwrap();
    assert!(
        open.1.contains("WHERE"),
        "feedback_open is partial: {}",
        open.1
    );
    let users = defs.iter().find(|(n, _)| n == "users_email").unwrap();
    assert!(users.1.contains("UNIQUE"), "{}", users.1);
    // Members are unique on (project, user): the primary key.
    assert!(
        defs.iter()
            .any(|(n, d)| n == "project_members_pkey" && d.contains("(project_id, user_id)"))
    );
}

/// `prev_id` chains each project's comments in id order, across batches and
/// with two projects interleaved in one batch; duplicates are not links, and
/// every read returns the stored link.
async fn each_comment_links_to_the_previous_comment_of_its_project(store: &Store) {
    let w = world(store).await;
    let mine = |text: &str, key: Option<&str>| request(&w, w.users[0], text, key);
    let other = |text: &str| request_in(w.other_project, w.other_feedback, w.users[0], text, None);

    let first = store
        .insert_comments(&[mine("a", Some("k-a")), other("x"), mine("b", None)])
        .await
        .unwrap();
    let (a, x, b) = (&first[0].comment, &first[1].comment, &first[2].comment);
    assert_eq!(
        a.prev_id, None,
        "the project's first comment has no predecessor"
    );
    assert_eq!(x.prev_id, None);
    assert_eq!(b.prev_id, Some(a.id));

    let second = store
        .insert_comments(&[other("y"), mine("a again", Some("k-a")), mine("c", None)])
        .await
        .unwrap();
    let (y, dup, c) = (&second[0].comment, &second[1], &second[2].comment);
    assert_eq!(y.prev_id, Some(x.id));
    assert!(dup.duplicate);
    assert_eq!(
        dup.comment.prev_id, None,
        "a retry returns the original link"
    );
    assert_eq!(c.prev_id, Some(b.id), "a duplicate is not a new link");

    let stored = store.comments_since(w.project, 0, 100).await.unwrap();
    let links: Vec<(i64, Option<i64>)> = stored.iter().map(|c| (c.id, c.prev_id)).collect();
    assert_eq!(
        links,
        vec![(a.id, None), (b.id, Some(a.id)), (c.id, Some(b.id))]
    );
    let latest = store.latest_comments(w.other_project, 10).await.unwrap();
    let links: Vec<(i64, Option<i64>)> = latest.iter().map(|c| (c.id, c.prev_id)).collect();
    assert_eq!(links, vec![(x.id, None), (y.id, Some(x.id))]);
}

/// PostgreSQL only (SQLite has one writer at a time): a batch writes its
/// comments in one statement that draws every new comment's id before the
/// rows go in, so when another node stores one of the batch's keys while
/// the batch is being written, that request becomes a duplicate of the
/// other node's comment, and the batch's next comment must link to the one
/// before it, not to the id drawn for the request that was left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_another_node_stores_during_a_batch_is_a_duplicate_and_not_a_link() {
    use sqlx::Connection as _;
    let db = TestDatabase::create().await;
    let store = Store::connect(&db.url, 8).await.unwrap();
    let w = world(&store).await;
    let first = store
        .insert_comments(&[request(&w, w.users[0], "before", None)])
        .await
        .unwrap();
    let before = first[0].comment.clone();
    let before_seq = first[0].event.as_ref().unwrap().seq;

    // The other node: the same user and key, in the other project (so it
    // holds no lock the batch waits for), not committed yet.
    let key = IdempotencyKey::from_client(Some("k-race")).unwrap();
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query(
        "INSERT INTO comments (project_id, feedback_id, user_id, text, idempotency_key, created_at) \
         VALUES ($1, $2, $3, 'theirs', $4, 0)",
    )
    .bind(w.other_project)
    .bind(w.other_feedback)
    .bind(w.users[0])
    .bind(key.as_str())
    .execute(&mut other)
    .await
    .unwrap();

    let batch = {
        let store = store.clone();
        let requests = vec![
            request(&w, w.users[0], "a", None),
            request(&w, w.users[0], "race", Some("k-race")),
            request(&w, w.users[0], "b", None),
        ];
        tokio::spawn(async move { store.insert_comments(&requests).await })
    };
    // The batch's statement has drawn its ids and waits on the other
    // node's uncommitted key; only then does the other node commit.
    let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut waited = false;
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(waited, "the batch never waited on the other node's key");
    sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();

    let out = batch.await.unwrap().unwrap();
    let (a, race, b) = (&out[0], &out[1], &out[2]);
    assert!(!a.duplicate && !b.duplicate);
    assert!(race.duplicate, "the other node's comment came first");
    assert_eq!(race.comment.text, "theirs");
    assert_eq!(a.comment.prev_id, Some(before.id));
    assert_eq!(
        b.comment.prev_id,
        Some(a.comment.id),
        "links skip the request that was left out"
    );
    let stored = store.comments_since(w.project, 0, 100).await.unwrap();
    let links: Vec<(i64, Option<i64>)> = stored.iter().map(|c| (c.id, c.prev_id)).collect();
    assert_eq!(
        links,
        vec![
            (before.id, None),
            (a.comment.id, Some(before.id)),
            (b.comment.id, Some(a.comment.id)),
        ]
    );
    let seqs: Vec<i64> = [a, b]
        .iter()
        .map(|o| o.event.as_ref().unwrap().seq)
        .collect();
    assert_eq!(
        seqs,
        [before_seq + 1, before_seq + 2],
        "one event per stored comment, no hole"
    );
}

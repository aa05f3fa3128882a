//! Comment history and REST comment writes.
//!
//! - `GET /feedback/item/{id}/comments`: one feedback item's comments, newest
//!   first, paged with an opaque cursor.
//! - `GET /projects/{id}/comments?since=`: a project's comments after a
//!   comment id, oldest first: what a reconnecting client fetches to fill the
//!   gap since the last comment it saw.
//! - `POST /feedback/item/{id}/comments`: goes through the same persister as a
//!   socket `comment_add`, so the project's sockets see it and a retry with
//!   the same `Idempotency-Key` returns the original comment.
//! - `GET /comments/{id}/thread`, `GET /comments/{id}/versions`: a comment's
//!   whole thread, and the earlier versions of an edited comment.

use std::sync::atomic::Ordering::Relaxed;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use vridge_protocol::{CommentId, FeedbackId, NewComment, ProjectId, Seq};

use super::ApiState;
use super::access::{self, Need};
use super::error::{ApiError, ErrorBody};
use super::etag::{PageTag, tagged_body, to_json};
use super::extract::{AuthUser, Commenter, Json, Path, Query};
use super::page_cache::{CachedPage, PageKey};
use super::views::{CommentFeed, CommentPage, CommentView, ThreadView, VersionList, VersionView};
use crate::domain::{IdempotencyKey, ValidComment};
use crate::hub::CommandError;
use crate::store::CommentRequest;

pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;
pub const DEFAULT_FEED: u32 = 100;
pub const MAX_FEED: u32 = 500;
/// The header carrying a REST client's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub fn router() -> Router<ApiState> {
    Router::new()
        .route(
            "/feedback/item/{feedback_id}/comments",
            get(feedback_comments).post(add_comment),
        )
        .route("/projects/{project_id}/comments", get(project_feed))
        .route("/comments/{comment_id}/thread", get(thread))
        .route("/comments/{comment_id}/versions", get(versions))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page; omit for the newest page.
    pub cursor: Option<String>,
    /// Comments per page (default 20, at most 100; larger values are capped).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// Only comments not resolved (default false: all).
    pub open: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Return comments with ids greater than this (default 0: from the start).
    #[param(minimum = 0)]
    pub since: Option<i64>,
    /// Most comments returned (default 100, at most 500; larger values are capped).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

/// A comment to add. Same fields and limits as a socket `comment_add`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddComment {
    pub text: String,
    pub title: Option<String>,
    pub section: Option<String>,
    pub security: Option<String>,
    /// Position in the video, in seconds (the start of a range).
    pub timestamp: Option<f64>,
    /// The end of the range the comment covers (needs `timestamp`; end >=
    /// start; both within 0..=86400).
    pub timestamp_end: Option<f64>,
    /// The comment this one answers, of the same feedback item (a reply to
    /// a reply is attached to the root).
    pub parent_id: Option<i64>,
}

pub(super) fn limit(raw: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        Some(0) => Err(ApiError::invalid("limit must be at least 1")),
        Some(n) => Ok(n.min(max)),
        None => Ok(default),
    }
}

/// Opaque page cursor: the id the next page starts below. Public (as
/// [`decode_cursor`]) for the fuzz targets in `fuzz/`.
pub fn encode_cursor(before: CommentId) -> String {
    URL_SAFE_NO_PAD.encode(format!("c1:{before}"))
}

/// Reads a cursor made by [`encode_cursor`]; anything else is a 400.
pub fn decode_cursor(raw: &str) -> Result<CommentId, ApiError> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("c1:").and_then(|n| n.parse().ok()))
        .ok_or(ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: "invalid cursor".into(),
        })
}

/// A feedback item's comments, newest first.
#[utoipa::path(get, path = "/feedback/item/{feedback_id}/comments", tag = "comments",
    params(("feedback_id" = i64, Path, description = "Feedback item id"), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page", body = CommentPage,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Unchanged since the ETag given"),
        (status = 400, description = "Malformed cursor or query", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such item, or not a member of its project", body = ErrorBody),
        (status = 422, description = "Invalid limit", body = ErrorBody),
    ))]
pub async fn feedback_comments(
    State(app): State<ApiState>,
    AuthUser(user): AuthUser,
    Path(feedback): Path<FeedbackId>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (project, _) = access::require_feedback(&app, feedback, user, Need::Read).await?;
    let limit = limit(q.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let open_only = q.open.unwrap_or(false);
    // Comments change after they are posted (edits, replies, reactions,
    // resolution), and every such change is an event of the project: the
    // tag names the project's newest event, read before the page so that
    // it never claims a state newer than the page shows.
    let newest = app.reads.last_seq(project).await?.unwrap_or(0);
    let key = PageKey::Item {
        feedback,
        before,
        limit,
        open_only,
    };
    if let Some(page) = kept_page(&app, &key, newest) {
        return tagged_body(&headers, &page.tag, page.body);
    }
    // One extra row tells whether another page follows.
    let mut rows = app
        .store
        .feedback_comments(feedback, before, limit + 1, open_only)
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|c| encode_cursor(c.id))
    } else {
        None
    };
    let tag = PageTag::new(
        "item",
        &[
            feedback,
            before.unwrap_or(0),
            i64::from(limit),
            i64::from(open_only),
            newest,
            rows.first().map_or(0, |c| c.id),
            rows.last().map_or(0, |c| c.id),
            rows.len() as i64,
            i64::from(more),
        ],
    );
    let body = to_json(&CommentPage {
        results: rows.into_iter().map(CommentView::from).collect(),
        next_cursor,
    })?;
    respond_and_keep(&app, &headers, key, newest, tag, body)
}

/// A project's comments after `since`, oldest first (the reconnect gap feed).
#[utoipa::path(get, path = "/projects/{project_id}/comments", tag = "comments",
    params(("project_id" = i64, Path, description = "Project id"), FeedQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Comments after `since`", body = CommentFeed,
            headers(("ETag" = String, description = "Send back as If-None-Match"))),
        (status = 304, description = "Unchanged since the ETag given"),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such project, or not a member", body = ErrorBody),
        (status = 422, description = "Invalid limit", body = ErrorBody),
    ))]
pub async fn project_feed(
    State(app): State<ApiState>,
    AuthUser(user): AuthUser,
    Path(project): Path<ProjectId>,
    Query(q): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    access::require(&app, project, user, Need::Read).await?;
    let limit = limit(q.limit, DEFAULT_FEED, MAX_FEED)?;
    let since = q.since.unwrap_or(0).max(0);
    // As for history pages: edits and deletions move the newest event,
    // read before the page.
    let newest = app.reads.last_seq(project).await?.unwrap_or(0);
    let key = PageKey::Feed {
        project,
        since,
        limit,
    };
    if let Some(page) = kept_page(&app, &key, newest) {
        return tagged_body(&headers, &page.tag, page.body);
    }
    let mut rows = app.store.comments_since(project, since, limit + 1).await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let last_comment_id = rows.last().map_or(since, |c| c.id);
    let tag = PageTag::new(
        "feed",
        &[
            project,
            since,
            newest,
            i64::from(limit),
            rows.first().map_or(0, |c| c.id),
            last_comment_id,
            rows.len() as i64,
            i64::from(has_more),
        ],
    );
    let body = to_json(&CommentFeed {
        results: rows.into_iter().map(CommentView::from).collect(),
        last_comment_id,
        has_more,
    })?;
    respond_and_keep(&app, &headers, key, newest, tag, body)
}

/// The page kept for `key` if its project is still at the event `newest`
/// (read before asking), counted either way.
fn kept_page(app: &ApiState, key: &PageKey, newest: Seq) -> Option<CachedPage> {
    let page = app.pages.get(key, newest);
    let counter = match page {
        Some(_) => &app.metrics.http.history_pages_from_memory,
        None => &app.metrics.http.history_pages_read,
    };
    counter.fetch_add(1, Relaxed);
    page
}

/// Sends a page just read (or 304) and keeps it for the next request that
/// finds its project at the same event `newest`. The body is kept without
/// spare capacity: the cache weighs it by its length.
fn respond_and_keep(
    app: &ApiState,
    headers: &HeaderMap,
    key: PageKey,
    newest: Seq,
    tag: PageTag,
    mut body: Vec<u8>,
) -> Result<Response, ApiError> {
    body.shrink_to_fit();
    let body = Bytes::from(body);
    let response = tagged_body(headers, &tag, body.clone());
    app.pages.insert(
        key,
        CachedPage {
            seq: newest,
            tag,
            body,
        },
    );
    response
}

/// Adds a comment (editors and up). Sockets of the project receive it as a
/// `comment` event. With the same `Idempotency-Key` a retry returns the
/// stored comment (200) instead of adding another (201).
#[utoipa::path(post, path = "/feedback/item/{feedback_id}/comments", tag = "comments",
    params(("feedback_id" = i64, Path, description = "Feedback item id"),
           ("Idempotency-Key" = Option<String>, Header, description = "1 to 128 characters; a retry with the same key is not stored twice")),
    request_body = AddComment,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = CommentView),
        (status = 200, description = "A retry: the comment stored earlier with this key", body = CommentView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Viewers may not comment", body = ErrorBody),
        (status = 404, description = "No such item, or not a member of its project", body = ErrorBody),
        (status = 422, description = "Invalid comment or idempotency key", body = ErrorBody),
        (status = 429, description = "Over the comment quota (shared with the socket's comment_add)",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Not stored; retry with the same key", body = ErrorBody),
    ))]
pub async fn add_comment(
    State(app): State<ApiState>,
    Commenter(user): Commenter,
    Path(feedback): Path<FeedbackId>,
    headers: HeaderMap,
    Json(req): Json<AddComment>,
) -> Result<Response, ApiError> {
    let (project, _) = access::require_feedback(&app, feedback, user, Need::Create).await?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key must be visible ASCII"))?,
        ),
    };
    let key = IdempotencyKey::from_client(key).map_err(|e| ApiError::invalid(e.to_string()))?;
    for (field, value) in [
        ("text", Some(&req.text)),
        ("title", req.title.as_ref()),
        ("section", req.section.as_ref()),
        ("security", req.security.as_ref()),
    ] {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(ApiError::invalid(format!("{field} must not contain NUL")));
        }
    }
    let comment = ValidComment::parse(NewComment {
        feedback_id: feedback,
        text: req.text,
        title: req.title,
        section: req.section,
        security: req.security,
        timestamp: req.timestamp,
        timestamp_end: req.timestamp_end,
        parent_id: req.parent_id,
    })
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let parent = app.hub.thread_root(&comment).await.map_err(|e| match e {
        CommandError::Invalid(_) => {
            ApiError::invalid("parent_id must be a comment of this feedback item")
        }
        _ => ApiError::Unavailable("The comment could not be stored, please retry"),
    })?;
    let _admitted = app.hub.admit().ok_or(ApiError::Unavailable(
        "The server is shutting down, please retry",
    ))?;
    let stored = app
        .hub
        .store_comment(CommentRequest {
            project_id: project,
            user_id: user,
            comment,
            key,
            parent,
        })
        .await?;
    let status = if stored.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = (status, axum::Json(CommentView::from(stored.comment))).into_response();
    if stored.duplicate {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The project of a comment the user may read; 404 for a comment that does
/// not exist and for one in a project the user is not a member of alike.
async fn readable_comment(app: &ApiState, comment: CommentId, user: i64) -> Result<(), ApiError> {
    let at = app
        .store
        .comment_ref(comment)
        .await?
        .ok_or(ApiError::NotFound(NO_COMMENT))?;
    match access::require(app, at.project_id, user, Need::Read).await {
        Err(ApiError::NotFound(_)) => Err(ApiError::NotFound(NO_COMMENT)),
        other => other.map(|_| ()),
    }
}

const NO_COMMENT: &str = "comment not found";

/// The thread a comment belongs to: its root and every reply, oldest first.
#[utoipa::path(get, path = "/comments/{comment_id}/thread", tag = "comments",
    params(("comment_id" = i64, Path, description = "A comment of the thread (its root or a reply)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The thread", body = ThreadView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such comment, or not a member of its project", body = ErrorBody),
    ))]
pub async fn thread(
    State(app): State<ApiState>,
    AuthUser(user): AuthUser,
    Path(comment): Path<CommentId>,
) -> Result<axum::Json<ThreadView>, ApiError> {
    readable_comment(&app, comment, user).await?;
    let (root, replies) = app
        .store
        .thread(comment)
        .await?
        .ok_or(ApiError::NotFound(NO_COMMENT))?;
    Ok(axum::Json(ThreadView {
        root: root.into(),
        replies: replies.into_iter().map(CommentView::from).collect(),
    }))
}

/// The earlier versions of an edited comment, oldest first.
#[utoipa::path(get, path = "/comments/{comment_id}/versions", tag = "comments",
    params(("comment_id" = i64, Path, description = "Comment id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Earlier versions (none if never edited, or deleted)", body = VersionList),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such comment, or not a member of its project", body = ErrorBody),
    ))]
pub async fn versions(
    State(app): State<ApiState>,
    AuthUser(user): AuthUser,
    Path(comment): Path<CommentId>,
) -> Result<axum::Json<VersionList>, ApiError> {
    readable_comment(&app, comment, user).await?;
    let versions = app.store.comment_versions(comment).await?;
    Ok(axum::Json(VersionList {
        versions: versions
            .into_iter()
            .map(|v| VersionView {
                version: v.version,
                text: v.text,
                title: v.title,
                section: v.section,
                written_at: crate::time::rfc3339(v.written_at),
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert!(decode_cursor("not-a-cursor").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:1")).is_err());
    }

    mod properties {
        //! `?cursor=` is whatever a client typed: any string is an id or a
        //! 400, never a panic; every cursor we hand out reads back as the id
        //! it was made from (fuzz target: `cursor`).

        use proptest::prelude::*;

        use super::*;

        /// Strings that get past the base64 step: the cursor's prefix or
        /// another, then anything.
        fn near_cursor() -> impl Strategy<Value = String> {
            (
                prop_oneof![
                    Just("c1:".to_owned()),
                    Just("c1".to_owned()),
                    "[a-z0-9:+-]{0,4}",
                ],
                any::<String>(),
            )
                .prop_map(|(prefix, rest)| URL_SAFE_NO_PAD.encode(format!("{prefix}{rest}")))
        }

        proptest! {
            #[test]
            fn cursor_decode_never_panics_on_arbitrary_strings(
                raw in prop_oneof![any::<String>(), near_cursor()],
            ) {
                if let Ok(id) = decode_cursor(&raw) {
                    prop_assert_eq!(decode_cursor(&encode_cursor(id)).ok(), Some(id));
                }
            }

            #[test]
            fn cursors_round_trip_every_id(id in any::<CommentId>()) {
                prop_assert_eq!(decode_cursor(&encode_cursor(id)).ok(), Some(id));
            }
        }
    }
}

//! Conditional GETs for history: a response carries an ETag, and a request
//! whose `If-None-Match` names it is answered 304 with no body.
//!
//! Two kinds of tag. Comment pages are tagged from their bounds
//! ([`PageTag`]), with no look at the body: a project's comment ids commit
//! in id order, so the same query with the same first id, last id and count
//! holds the same comments (nothing can appear inside the range later), and
//! every change to a comment after it was posted is an event of its
//! project, so the tag also carries the project's newest event number. A
//! page costs no hash of its body, and a revalidation that matches a page
//! kept in memory (see `page_cache`) is answered from its tag alone.
//! Everything else (feedback lists, whose content is not named by bounds)
//! is tagged with a hash of its body ([`json_with_etag`]).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// `value` as JSON with an ETag hashed from the body, or 304 when the
/// client has it already.
pub fn json_with_etag<T: Serialize>(request: &HeaderMap, value: &T) -> Result<Response, ApiError> {
    let body = to_json(value)?;
    let digest = Sha256::digest(&body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    respond(request, &hex, || Ok(body.into()))
}

/// The tag of one page of comments: what was asked (`kind` and the query's
/// numbers) and what came back (first id, last id, count, whether more
/// follow). See the module's note for why that names the page's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageTag(String);

impl PageTag {
    /// `kind` names the query (lowercase letters); `parts` are its numbers
    /// and the page's bounds, in a fixed order.
    pub fn new(kind: &str, parts: &[i64]) -> Self {
        let mut tag = format!("c1-{kind}");
        for part in parts {
            tag.push('-');
            tag.push_str(&part.to_string());
        }
        Self(tag)
    }

    /// The tag's text, as sent between the quotes of `ETag`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `value()` as JSON under `tag`, or 304 (without calling `value`) when the
/// client holds that page already.
pub fn json_tagged<T: Serialize>(
    request: &HeaderMap,
    tag: &PageTag,
    value: impl FnOnce() -> T,
) -> Result<Response, ApiError> {
    respond(request, &tag.0, || to_json(&value()).map(Bytes::from))
}

/// `body` (JSON made earlier, e.g. by [`to_json`]) under `tag`, or 304 when
/// the client holds that page already.
pub fn tagged_body(request: &HeaderMap, tag: &PageTag, body: Bytes) -> Result<Response, ApiError> {
    respond(request, &tag.0, || Ok(body))
}

/// `value` as a JSON body.
pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The response under the opaque tag `opaque`: 304 when `If-None-Match`
/// names it, else the body `body()` makes.
fn respond(
    request: &HeaderMap,
    opaque: &str,
    body: impl FnOnce() -> Result<Bytes, ApiError>,
) -> Result<Response, ApiError> {
    // Weak: the same JSON may be sent gzip-compressed or not.
    let etag = format!("W/\"{opaque}\"");
    let tag = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.to_string()))?;
    if matches(request, opaque) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    Ok((
        [
            (header::ETAG, tag),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body()?,
    )
        .into_response())
}

/// Whether `If-None-Match` lists the tag `opaque` (weak comparison) or `*`.
fn matches(request: &HeaderMap, opaque: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == opaque)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_strong_forms_of_the_tag_match() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(matches(&h, "abc"));
        assert!(!matches(&h, "abd"));
        assert!(!matches(&HeaderMap::new(), "abc"));
    }

    #[test]
    fn a_page_tag_names_every_bound_and_a_match_skips_the_body() {
        let tag = PageTag::new("feed", &[7, 0, 50, 1, 50, 50, 0]);
        assert_eq!(tag.0, "c1-feed-7-0-50-1-50-50-0");
        assert_ne!(tag, PageTag::new("feed", &[7, 0, 50, 1, 50, 49, 0]));
        assert_ne!(tag, PageTag::new("item", &[7, 0, 50, 1, 50, 50, 0]));
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("W/\"c1-feed-7-0-50-1-50-50-0\""),
        );
        let resp = json_tagged(&h, &tag, || -> u8 { panic!("serialized") }).unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        let resp = json_tagged(&HeaderMap::new(), &tag, || 5).unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::ETAG],
            "W/\"c1-feed-7-0-50-1-50-50-0\""
        );
    }
}

//! History pages kept in memory while their project has not changed.
//!
//! A page of 50 comments costs a query returning 50 rows of 20 columns,
//! their decoding and their JSON: about a quarter of a millisecond of CPU,
//! much of it the database's, on the same cores that carry the sockets.
//! Readers of a project mostly ask for the same few pages (the newest page
//! of an item, the feed from the start) and mostly while nothing changed,
//! so the page is kept, serialized, with the number of its project's newest
//! event.
//!
//! Why that number is enough to tell a page is current: every change a
//! comment page shows (a comment added, edited, withdrawn, resolved,
//! reopened, replied to or reacted to) commits with an event of its
//! project, in the same transaction. An entry keeps the number read
//! *before* its page was read; a request reads the number first too and
//! uses the entry only when the two are equal. Equal means no event
//! committed between the entry's read and this one, so the page as read
//! then is the page as of now (had the page been read after a later event,
//! the number now would be that later one, and the entry would not be
//! used). There is nothing to invalidate and nothing to tell other nodes:
//! an event committed anywhere moves the number every node reads from the
//! store, and the stale entry is replaced by the next read.
//!
//! Access is checked per request before the cache is asked; a page holds
//! nothing specific to its reader.
//!
//! The argument holds for changes made through the server. A change made
//! beside it — SQL run by hand on `comments` or `reactions`, a migration
//! that rewrites them while nodes run, a restored backup (which can bring a
//! project back to an event number it had with other content) — is not
//! seen until the project's next event: restart the nodes after such work,
//! or run them with `--history-cache-bytes 0` during it.

use std::num::NonZeroUsize;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};
use vridge_protocol::{CommentId, FeedbackId, ProjectId, Seq};

use super::etag::PageTag;

/// Bytes an entry costs besides its body and tag: the key, the tag's and
/// the body's headers, the cache's slot and its allocator rounding.
const ENTRY_OVERHEAD: u64 = 256;
/// The cache's shards, each with its own lock and a slice of the budget.
/// Fixed rather than derived from the core count (quick_cache's default),
/// so that the largest page kept — about a quarter of the budget — does not
/// shrink on a bigger machine.
const SHARDS: usize = 4;
/// The size of a typical entry (a page of 20 to 50 comments), to size the
/// cache's table for the number of entries its budget holds.
const TYPICAL_ENTRY: usize = 16 * 1024;

/// Which page: the query's parameters, as the handlers validated them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageKey {
    /// `GET /feedback/item/{id}/comments`: newest first, below `before`.
    Item {
        feedback: FeedbackId,
        before: Option<CommentId>,
        limit: u32,
        open_only: bool,
    },
    /// `GET /projects/{id}/comments?since=`: oldest first, after `since`.
    Feed {
        project: ProjectId,
        since: CommentId,
        limit: u32,
    },
}

/// A page as sent: its tag and its JSON body, as of the event `seq`.
#[derive(Debug, Clone)]
pub struct CachedPage {
    pub seq: Seq,
    pub tag: PageTag,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
struct PageWeight;

impl Weighter<PageKey, CachedPage> for PageWeight {
    fn weight(&self, _key: &PageKey, page: &CachedPage) -> u64 {
        page.body.len() as u64 + page.tag.as_str().len() as u64 + ENTRY_OVERHEAD
    }
}

/// Pages by query, within a budget of bytes; the least useful go first
/// (quick_cache's CLOCK-Pro: a page read once does not push out one read
/// often), and a page heavier than a shard's share of the budget is not
/// kept at all. One per server.
pub struct PageCache {
    pages: Option<Cache<PageKey, CachedPage, PageWeight>>,
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("entries", &self.pages.as_ref().map_or(0, Cache::len))
            .finish()
    }
}

impl PageCache {
    /// A cache holding at most `max_bytes` of pages; 0 keeps none.
    pub fn new(max_bytes: usize) -> Self {
        let pages = NonZeroUsize::new(max_bytes).and_then(|budget| {
            let options = OptionsBuilder::new()
                .shards(SHARDS)
                .estimated_items_capacity((budget.get() / TYPICAL_ENTRY).max(16))
                .weight_capacity(budget.get() as u64)
                .build();
            match options {
                Ok(options) => Some(Cache::with_options(
                    options,
                    PageWeight,
                    Default::default(),
                    Default::default(),
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "history pages will not be kept");
                    None
                }
            }
        });
        Self { pages }
    }

    /// The page for `key` if it is the page as of the project's newest
    /// event `newest` (read by the caller before asking).
    pub fn get(&self, key: &PageKey, newest: Seq) -> Option<CachedPage> {
        let page = self.pages.as_ref()?.get(key)?;
        (page.seq == newest).then_some(page)
    }

    /// Keeps `page`, read after its project's newest event was `page.seq`,
    /// in place of any older page for `key`. A slow request that read an
    /// older event does not replace a newer page. (Two requests may still
    /// race between the look and the insert; the loser costs a hit, never
    /// a stale answer, since `get` compares the event.)
    pub fn insert(&self, key: PageKey, page: CachedPage) {
        let Some(pages) = &self.pages else {
            return;
        };
        if pages.get(&key).is_some_and(|kept| kept.seq > page.seq) {
            return;
        }
        pages.insert(key, page);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seq: Seq, body: &'static str) -> CachedPage {
        CachedPage {
            seq,
            tag: PageTag::new("feed", &[1, seq]),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    const KEY: PageKey = PageKey::Feed {
        project: 1,
        since: 0,
        limit: 50,
    };

    #[test]
    fn a_page_is_served_only_at_the_event_it_was_read_after() {
        let cache = PageCache::new(1 << 20);
        cache.insert(KEY, page(7, "[7]"));
        assert_eq!(cache.get(&KEY, 7).map(|p| p.body), Some(Bytes::from("[7]")));
        assert!(cache.get(&KEY, 8).is_none(), "a newer event makes it stale");
        let other = PageKey::Feed {
            project: 1,
            since: 0,
            limit: 49,
        };
        assert!(cache.get(&other, 7).is_none());
        cache.insert(KEY, page(8, "[8]"));
        assert_eq!(cache.get(&KEY, 8).map(|p| p.body), Some(Bytes::from("[8]")));
        assert!(cache.get(&KEY, 7).is_none());
        // A request that read event 7 and finished late keeps the newer page.
        cache.insert(KEY, page(7, "[7]"));
        assert_eq!(cache.get(&KEY, 8).map(|p| p.body), Some(Bytes::from("[8]")));
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = PageCache::new(0);
        cache.insert(KEY, page(7, "[7]"));
        assert!(cache.get(&KEY, 7).is_none());
    }

    #[test]
    fn the_budget_holds_however_many_pages_are_read() {
        let cache = PageCache::new(64 * 1024);
        let body: &'static str = Box::leak("x".repeat(4000).into_boxed_str());
        for project in 0..1000 {
            let key = PageKey::Feed {
                project,
                since: 0,
                limit: 50,
            };
            cache.insert(key, page(1, body));
        }
        let pages = cache.pages.as_ref().map_or(0, Cache::len);
        assert!(pages > 0 && pages <= 16, "{pages} pages of 4 KB in 64 KiB");
        // A page above its shard's share of the budget (here all of it: a
        // cache this small has one shard) is not kept.
        let huge: &'static str = Box::leak("x".repeat(80 * 1024).into_boxed_str());
        cache.insert(KEY, page(1, huge));
        assert!(cache.get(&KEY, 1).is_none());
    }
}

//! Parsed user input: values that can only exist once they are valid
//! ("parse, don't validate"). Each constructor returns what was wrong.

use std::fmt;
use std::str::FromStr;

use vridge_protocol::{CommentEdit, NewComment};

/// A project member's role, with the product's permission table:
/// owner all; admin create/read/update/delete/invite; editor create/read/update;
/// viewer read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// May add comments, reactions, feedback, and signal typing.
    pub fn can_create(self) -> bool {
        self >= Role::Editor
    }

    /// May change feedback status and project details.
    pub fn can_update(self) -> bool {
        self >= Role::Editor
    }

    /// May delete and invite or remove members.
    pub fn can_manage(self) -> bool {
        self >= Role::Admin
    }

    /// May withdraw comments of other members (their authors always may).
    pub fn can_delete_others(self) -> bool {
        self.can_manage()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role: {0}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "editor" => Ok(Role::Editor),
            "viewer" => Ok(Role::Viewer),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// Longest comment text the product accepts, in characters.
pub const MAX_COMMENT_CHARS: usize = 10_000;
/// Longest optional comment field (title, section, security), in characters.
pub const MAX_COMMENT_FIELD_CHARS: usize = 200;
/// Longest client-chosen idempotency key, in characters.
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 128;

/// Why a comment was refused; the client is told "Invalid comment data".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidComment {
    #[error("text must be 1..={MAX_COMMENT_CHARS} characters")]
    Text,
    #[error("{0} must be at most {MAX_COMMENT_FIELD_CHARS} characters")]
    Field(&'static str),
    #[error("timestamp must be a finite number of seconds >= 0")]
    Timestamp,
    #[error(
        "timestamp_end needs a timestamp, and start <= end, both within 0..={MAX_RANGE_SECONDS} seconds"
    )]
    Range,
    #[error(
        "client_msg_id must be 1..={MAX_CLIENT_MSG_ID_CHARS} characters without control characters"
    )]
    ClientMsgId,
    #[error("{0} must not contain U+0000")]
    Nul(&'static str),
}

/// True when `s` holds U+0000. PostgreSQL refuses it in text (SQLite would
/// store it), and one such row fails a whole multi-row INSERT — so it is
/// refused here, at the edge, for every engine alike.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// A comment whose fields passed every check; the feedback's project is
/// checked separately because it needs the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidComment(NewComment);

impl ValidComment {
    pub fn parse(raw: NewComment) -> Result<Self, InvalidComment> {
        let chars = raw.text.chars().count();
        if chars == 0 || chars > MAX_COMMENT_CHARS || raw.text.trim().is_empty() {
            return Err(InvalidComment::Text);
        }
        if has_nul(&raw.text) {
            return Err(InvalidComment::Nul("text"));
        }
        for (name, value) in [
            ("title", &raw.title),
            ("section", &raw.section),
            ("security", &raw.security),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.chars().count() > MAX_COMMENT_FIELD_CHARS)
            {
                return Err(InvalidComment::Field(name));
            }
            if value.as_deref().is_some_and(has_nul) {
                return Err(InvalidComment::Nul(name));
            }
        }
        if raw.timestamp.is_some_and(|t| !t.is_finite() || t < 0.0) {
            return Err(InvalidComment::Timestamp);
        }
        if let Some(end) = raw.timestamp_end {
            let in_range = |t: f64| t.is_finite() && (0.0..=MAX_RANGE_SECONDS).contains(&t);
            match raw.timestamp {
                Some(start) if in_range(start) && in_range(end) && start <= end => {}
                _ => return Err(InvalidComment::Range),
            }
        }
        Ok(Self(raw))
    }

    pub fn inner(&self) -> &NewComment {
        &self.0
    }
}

/// The last second a range may cover: a day of footage.
pub const MAX_RANGE_SECONDS: f64 = 86_400.0;

/// A `comment_edit` whose fields passed the checks of a new comment's.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEdit(CommentEdit);

impl ValidEdit {
    pub fn parse(raw: CommentEdit) -> Result<Self, InvalidComment> {
        ValidComment::parse(NewComment {
            text: raw.text.clone(),
            title: raw.title.clone(),
            section: raw.section.clone(),
            ..NewComment::default()
        })?;
        Ok(Self(raw))
    }

    pub fn inner(&self) -> &CommentEdit {
        &self.0
    }
}

/// An idempotency key for a comment: the client's `client_msg_id` (or REST
/// `Idempotency-Key`), or a fresh random one when the client gave none, so
/// that every stored comment has a key and a batch insert can map its
/// returned rows back to the requests by key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn from_client(raw: Option<&str>) -> Result<Self, InvalidComment> {
        match raw {
            None => Ok(Self(format!("srv-{}", uuid::Uuid::new_v4()))),
            Some(k)
                if k.is_empty()
                    || k.chars().count() > MAX_CLIENT_MSG_ID_CHARS
                    || k.chars().any(char::is_control) =>
            {
                Err(InvalidComment::ClientMsgId)
            }
            Some(k) => Ok(Self(format!("c-{k}"))),
        }
    }

    /// The key of a command other than `comment_add`: only a client's
    /// `client_msg_id` is kept (a command without one is not retried by id;
    /// its effect is idempotent by itself or it is a new change).
    pub fn of_command(raw: Option<&str>) -> Result<Option<Self>, InvalidComment> {
        raw.map(|k| Self::from_client(Some(k))).transpose()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest emoji (or short reaction code such as `:+1:`), in characters.
pub const MAX_EMOJI_CHARS: usize = 32;

/// A reaction emoji: non-empty, short, no whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(String);

/// The emoji was empty, too long or contained whitespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("emoji must be 1..={MAX_EMOJI_CHARS} characters without whitespace or control characters")]
pub struct InvalidEmoji;

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, InvalidEmoji> {
        let n = raw.chars().count();
        if n == 0 || n > MAX_EMOJI_CHARS || raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(InvalidEmoji);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> NewComment {
        NewComment {
            feedback_id: 1,
            text: text.into(),
            title: None,
            section: None,
            security: None,
            timestamp: None,
            ..NewComment::default()
        }
    }

    #[test]
    fn a_range_needs_its_start_and_stays_within_a_day() {
        let range = |start: Option<f64>, end: f64| {
            ValidComment::parse(NewComment {
                timestamp: start,
                timestamp_end: Some(end),
                ..raw("x")
            })
        };
        assert!(range(Some(1.5), 1.5).is_ok());
        assert!(range(Some(0.0), MAX_RANGE_SECONDS).is_ok());
        assert_eq!(range(None, 3.0), Err(InvalidComment::Range));
        assert_eq!(range(Some(4.0), 3.0), Err(InvalidComment::Range));
        assert_eq!(
            range(Some(1.0), MAX_RANGE_SECONDS + 0.5),
            Err(InvalidComment::Range)
        );
        assert_eq!(range(Some(1.0), f64::INFINITY), Err(InvalidComment::Range));
    }

    #[test]
    fn comment_text_bounds_are_inclusive_and_counted_in_chars() {
        assert!(ValidComment::parse(raw("x")).is_ok());
        assert!(ValidComment::parse(raw(&"é".repeat(MAX_COMMENT_CHARS))).is_ok());
        assert_eq!(
            ValidComment::parse(raw(&"é".repeat(MAX_COMMENT_CHARS + 1))),
            Err(InvalidComment::Text)
        );
        assert_eq!(ValidComment::parse(raw("")), Err(InvalidComment::Text));
        assert_eq!(ValidComment::parse(raw("   ")), Err(InvalidComment::Text));
    }

    #[test]
    fn comment_rejects_negative_or_nan_timestamp_and_long_fields() {
        let mut c = raw("ok");
        c.timestamp = Some(f64::NAN);
        assert_eq!(
            ValidComment::parse(c.clone()),
            Err(InvalidComment::Timestamp)
        );
        c.timestamp = Some(-1.0);
        assert_eq!(
            ValidComment::parse(c.clone()),
            Err(InvalidComment::Timestamp)
        );
        c.timestamp = Some(12.5);
        c.title = Some("t".repeat(MAX_COMMENT_FIELD_CHARS + 1));
        assert_eq!(ValidComment::parse(c), Err(InvalidComment::Field("title")));
    }

    #[test]
    fn client_keys_and_server_keys_never_collide() {
        let client = IdempotencyKey::from_client(Some("srv-1")).unwrap();
        assert_eq!(client.as_str(), "c-srv-1");
        let server = IdempotencyKey::from_client(None).unwrap();
        assert!(server.as_str().starts_with("srv-"));
        assert_ne!(server, IdempotencyKey::from_client(None).unwrap());
        assert_eq!(
            IdempotencyKey::from_client(Some("")),
            Err(InvalidComment::ClientMsgId)
        );
    }

    #[test]
    fn roles_follow_the_product_table() {
        assert!(!Role::Viewer.can_create());
        assert!(
            Role::Editor.can_create() && Role::Editor.can_update() && !Role::Editor.can_manage()
        );
        assert!(Role::Admin.can_manage());
        assert_eq!("owner".parse::<Role>(), Ok(Role::Owner));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn emoji_is_short_and_has_no_whitespace() {
        assert!(Emoji::parse("👍").is_ok());
        assert!(Emoji::parse(":+1:").is_ok());
        assert_eq!(Emoji::parse(""), Err(InvalidEmoji));
        assert_eq!(Emoji::parse("a b"), Err(InvalidEmoji));
        assert_eq!(Emoji::parse(&"x".repeat(33)), Err(InvalidEmoji));
        assert_eq!(Emoji::parse("\0"), Err(InvalidEmoji));
        assert_eq!(Emoji::parse("a\u{7}"), Err(InvalidEmoji));
    }

    #[test]
    fn nul_is_refused_in_every_comment_text_field_and_key() {
        assert_eq!(
            ValidComment::parse(raw("a\0b")),
            Err(InvalidComment::Nul("text"))
        );
        for field in ["title", "section", "security"] {
            let mut c = raw("ok");
            let v = Some("x\0".to_owned());
            match field {
                "title" => c.title = v,
                "section" => c.section = v,
                _ => c.security = v,
            }
            assert_eq!(ValidComment::parse(c), Err(InvalidComment::Nul(field)));
        }
        assert_eq!(
            IdempotencyKey::from_client(Some("m\0-1")),
            Err(InvalidComment::ClientMsgId)
        );
        // Newlines and tabs stay allowed in comment text.
        assert!(ValidComment::parse(raw("line one\n\tline two")).is_ok());
    }
}

//! Checks on REST input that the wire types do not already make: account
//! fields, names, and the enumerated feedback values. Each returns a 422
//! message naming what was wrong.

use super::error::ApiError;
use crate::auth::password::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

pub const MAX_EMAIL_CHARS: usize = 254;
pub const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=30;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
pub const MAX_URL_CHARS: usize = 2_048;
pub const FEEDBACK_STATUSES: [&str; 4] = ["open", "in_progress", "resolved", "closed"];
pub const PRIORITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// An email address, trimmed and lower-cased: `local@domain` with a dot in
/// the domain and no whitespace.
pub fn email(raw: &str) -> Result<String, ApiError> {
    let e = raw.trim().to_lowercase();
    let ok = e.chars().count() <= MAX_EMAIL_CHARS
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(e)
    } else {
        Err(ApiError::invalid("email must be a valid email address"))
    }
}

/// A username: 3..=30 characters, letters, digits and `@.+-_`.
pub fn username(raw: &str) -> Result<String, ApiError> {
    let n = raw.chars().count();
    if USERNAME_CHARS.contains(&n)
        && raw
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
    {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid(
            "username must be 3 to 30 letters, digits or @.+-_",
        ))
    }
}

/// A new password: 8..=256 characters.
pub fn password(raw: &str) -> Result<(), ApiError> {
    let n = raw.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )))
    }
}

/// Free text of at most `max` characters without NUL or other control
/// characters (newlines and tabs allowed); `required` refuses blank text.
pub fn text(field: &str, raw: &str, max: usize, required: bool) -> Result<(), ApiError> {
    let n = raw.chars().count();
    if required && raw.trim().is_empty() {
        return Err(ApiError::invalid(format!("{field} must not be blank")));
    }
    if n > max {
        return Err(ApiError::invalid(format!(
            "{field} must be at most {max} characters"
        )));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ApiError::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// One of `allowed`, or a 422 naming them.
pub fn one_of<'a>(field: &str, raw: &str, allowed: &[&'a str]) -> Result<&'a str, ApiError> {
    allowed
        .iter()
        .find(|a| **a == raw)
        .copied()
        .ok_or_else(|| ApiError::invalid(format!("{field} must be one of {}", allowed.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "", "ann", "@x.io", "ann@", "ann@io", "a b@x.io", "a@b@x.io", "a@.io",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn username_and_password_bounds() {
        assert!(username("abc").is_ok());
        assert!(username("ab").is_err());
        assert!(username(&"a".repeat(30)).is_ok());
        assert!(username(&"a".repeat(31)).is_err());
        assert!(username("has space").is_err());
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
    }

    #[test]
    fn text_refuses_nul_and_blank() {
        assert!(text("name", "a\0b", 10, true).is_err());
        assert!(text("name", "  ", 10, true).is_err());
        assert!(text("description", "", 10, false).is_ok());
        assert!(text("name", "line\nbreak", 20, true).is_ok());
        assert_eq!(
            one_of("status", "open", &FEEDBACK_STATUSES).unwrap(),
            "open"
        );
        assert_eq!(
            one_of("status", "closed", &FEEDBACK_STATUSES).unwrap(),
            "closed"
        );
        assert!(one_of("status", "done", &FEEDBACK_STATUSES).is_err());
    }
}

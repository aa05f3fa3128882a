//! Refresh-token rows: issued, rotated (the old one revoked in the same
//! statement that checks it), and revoked by family when a revoked token is
//! presented again.

use vridge_protocol::UserId;

use super::{Store, StoreError, on_pool};
use crate::time::now_ms;

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// It was live and is now revoked; issue its successor in `family`.
    Rotated { user: UserId, family: String },
    /// It had been revoked already: someone replays it. Its family is now revoked.
    Reused,
    /// Unknown or expired.
    Unknown,
}

impl Store {
    /// Records a newly issued refresh token, and drops expired ones.
    pub async fn insert_refresh_token(
        &self,
        jti_hash: &str,
        family: &str,
        user: UserId,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())?;
            sqlx::query(
                "INSERT INTO refresh_tokens (jti_hash, family_id, user_id, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(jti_hash)
            .bind(family)
            .bind(user)
            .bind(expires_at_ms)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(StoreError::from_write)
        })
    }

    /// Uses a refresh token once: revokes it if it is live, or revokes its
    /// whole family if it was revoked already.
    pub async fn use_refresh_token(&self, jti_hash: &str) -> Result<RefreshUse, StoreError> {
        let now = now_ms();
        let rotated: Option<(UserId, String)> = on_pool!(self, pool => sqlx::query_as(
            "UPDATE refresh_tokens SET revoked_at = $2 \
             WHERE jti_hash = $1 AND revoked_at IS NULL AND expires_at > $2 \
             RETURNING user_id, family_id",
        )
        .bind(jti_hash)
        .bind(now)
        .fetch_optional(pool)
        .await)?;
        if let Some((user, family)) = rotated {
            return Ok(RefreshUse::Rotated { user, family });
        }
        let revoked: Option<(String, Option<i64>)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT family_id, revoked_at FROM refresh_tokens WHERE jti_hash = $1",
        )
        .bind(jti_hash)
        .fetch_optional(pool)
        .await)?;
        match revoked {
            Some((family, Some(_))) => {
                self.revoke_refresh_family(&family).await?;
                Ok(RefreshUse::Reused)
            }
            _ => Ok(RefreshUse::Unknown),
        }
    }

    /// Revokes the family of the token with `jti_hash` (logout). Returns
    /// whether the token was known.
    pub async fn revoke_refresh_token_family(&self, jti_hash: &str) -> Result<bool, StoreError> {
        let family: Option<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT family_id FROM refresh_tokens WHERE jti_hash = $1",
        )
        .bind(jti_hash)
        .fetch_optional(pool)
        .await)?;
        match family {
            Some(f) => {
                self.revoke_refresh_family(&f).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn revoke_refresh_family(&self, family: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}

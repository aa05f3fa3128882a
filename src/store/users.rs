//! User lookups for sign-in and `/me`.

use vridge_protocol::UserId;

use super::accounts::User;
use super::{Store, StoreError, on_pool};

#[derive(Debug, sqlx::FromRow)]
struct CredentialRow {
    id: UserId,
    email: String,
    username: String,
    created_at: i64,
    password_hash: Option<String>,
}

impl Store {
    /// The user with `email` and their password hash (`None` for users
    /// without a password), for sign-in.
    pub async fn user_credentials(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, CredentialRow>(
            "SELECT id, email, username, created_at, password_hash FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(|r| {
            (
                User {
                    id: r.id,
                    email: r.email,
                    username: r.username,
                    created_at: r.created_at,
                },
                r.password_hash,
            )
        }))
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as::<_, User>(
            "SELECT id, email, username, created_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?)
    }

    /// Replaces a user's password hash (an argon2id PHC string); `--demo`
    /// gives its users a fresh password on every run this way.
    pub async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::from_write)
    }
}

//! `--demo`: demo users (an owner, an editor, a viewer), a project with two
//! feedback items, and for each user a password to sign in on the review page
//! (fresh on every run, printed once, stored only as an argon2id hash), a
//! token and a connect URL, so a person can try the server in a browser or
//! with any WebSocket client. Idempotent: a second run reuses the users and
//! the project the first created.

use std::net::SocketAddr;
use std::time::Duration;

use crate::app::AppState;
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::auth::TokenKind;
use crate::domain::Role;
use crate::store::{NewFeedback, NewUser, StoreError, User};

/// Characters of a generated demo password.
const DEMO_PASSWORD_CHARS: usize = 16;

/// Demo tokens live a day, so a demo session does not need the REST login.
const DEMO_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("minting a token failed")]
    Token,
    #[error("hashing a password failed")]
    Password,
}

/// One demo user with what a person needs to connect as them.
#[derive(Debug, Clone)]
pub struct DemoUser {
    pub role: Role,
    pub user: User,
    /// The password to sign in with on the page, valid until the next
    /// `--demo` run.
    pub password: String,
    pub token: String,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct Demo {
    /// The review page's address.
    pub page: String,
    pub project_id: i64,
    pub feedback_ids: Vec<i64>,
    pub users: Vec<DemoUser>,
}

async fn user(state: &AppState, role: Role) -> Result<User, StoreError> {
    let email = format!("demo-{role}@vridge.local");
    if let Some(u) = state.store.user_by_email(&email).await? {
        return Ok(u);
    }
    let username = format!("demo_{role}");
    state
        .store
        .create_user(&NewUser {
            email: &email,
            username: &username,
            password_hash: None,
        })
        .await
}

pub async fn seed(state: &AppState, addr: SocketAddr) -> Result<Demo, DemoError> {
    let owner = user(state, Role::Owner).await?;
    let editor = user(state, Role::Editor).await?;
    let viewer = user(state, Role::Viewer).await?;
    let store = &state.store;
    let project = match store.projects_owned_by(owner.id).await?.into_iter().next() {
        Some(p) => p,
        None => {
            let p = store
                .create_project(owner.id, "Demo cut", "A demo project")
                .await?;
            store.add_member(p.id, editor.id, Role::Editor).await?;
            store.add_member(p.id, viewer.id, Role::Viewer).await?;
            for (title, at) in [
                ("Colour jumps in the opening shot", 4.0),
                ("Audio out of sync", 42.5),
            ] {
                store
                    .create_feedback(&NewFeedback {
                        project_id: p.id,
                        created_by: owner.id,
                        title,
                        priority: "medium",
                        timestamp: Some(at),
                        video_url: None,
                    })
                    .await?;
            }
            p
        }
    };
    let feedback_ids = store.feedback_ids(project.id).await?;
    let mut users = Vec::new();
    for (role, user) in [
        (Role::Owner, owner),
        (Role::Editor, editor),
        (Role::Viewer, viewer),
    ] {
        let token = state
            .jwt
            .mint(user.id, TokenKind::Access, DEMO_TOKEN_TTL)
            .map_err(|_| DemoError::Token)?;
        let url = format!("ws://{addr}/ws/feedback/{}?token={token}", project.id);
        let password: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(DEMO_PASSWORD_CHARS)
            .map(char::from)
            .collect();
        let hash = state
            .hashes
            .hash(password.clone())
            .await
            .map_err(|_| DemoError::Password)?;
        state.store.set_password_hash(user.id, &hash).await?;
        users.push(DemoUser {
            role,
            user,
            password,
            token,
            url,
        });
    }
    Ok(Demo {
        page: format!("http://{addr}/"),
        project_id: project.id,
        feedback_ids,
        users,
    })
}

impl Demo {
    /// What `--demo` prints.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "Review page: {}\nDemo project {} with feedback items {:?}\n",
            self.page, self.project_id, self.feedback_ids
        );
        for u in &self.users {
            out.push_str(&format!(
                "\n{} (user {}):\n  sign in: {} / {}\n  token: {}\n  connect: {}\n",
                u.role, u.user.id, u.user.email, u.password, u.token, u.url
            ));
        }
        out.push_str("\nThe passwords above are new on every --demo run.\n");
        out.push_str(&format!(
            "\nTry, in a connected socket:\n  {{\"type\":\"comment_add\",\"comment\":{{\"feedback_id\":{},\"text\":\"hello\"}},\"client_msg_id\":\"m1\"}}\n",
            self.feedback_ids.first().copied().unwrap_or(1)
        ));
        out
    }
}

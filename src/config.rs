//! The server's whole configuration: every field a command-line flag with an
//! environment variable behind it. README.md lists them all.
//!
//! [`Config`] holds what concerns the whole process (the address, the data
//! directory, the demo, the shutdown deadline) and one section per concern,
//! flattened into the same command line, so flags and variables are plain
//! `--name`/`VRIDGE_NAME` whatever their section:
//!
//! - [`StoreConfig`] (`config.store`): the database URL and pool, the
//!   persister's batch;
//! - [`SocketConfig`] (`config.sockets`): per-socket limits, keepalive,
//!   typing and presence timing, resume bounds, allowed upgrade origins;
//! - [`LimitsConfig`] (`config.limits`): the per-user message and REST write
//!   quotas and the per-address upgrade quota;
//! - [`RedisConfig`] (`config.redis`): the cluster broker, if any;
//! - [`AuthConfig`] (`config.auth`): signing keys ([`JwtSecret`], whose
//!   `Debug` never shows it), token lifetimes, sign-in throttling, password
//!   hashing;
//! - [`HttpConfig`] (`config.http`): CORS, body size, request and header
//!   timeouts, connections per address.
//!
//! Each module is built from its own section, not from the whole `Config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Command line of the `vridge-realtime` binary.
#[derive(Debug, Parser)]
#[command(name = "vridge-realtime", version, about = "Realtime feedback server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve (the default when no subcommand is given).
    Serve,
    /// Mint an access token for a user, for operators and tests.
    Token {
        /// The user's id.
        #[arg(long)]
        user: i64,
        /// Lifetime in seconds (default: the access-token lifetime).
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
    /// Create load-test users and projects in the store and write their
    /// tokens as JSON lines for `vridge-loadtest`.
    Provision(ProvisionArgs),
}

/// What `provision` creates: `projects` × `members` users (the first member
/// of each project owns it, the others are editors), one feedback item per
/// project, and an access token per user.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// Projects to create.
    #[arg(long)]
    pub projects: usize,
    /// Members per project, owner included (each is a distinct user).
    #[arg(long)]
    pub members: usize,
    /// Where to write the JSON lines (`-` for standard output).
    #[arg(long)]
    pub out: PathBuf,
    /// Lifetime of the minted tokens, in seconds: long enough for the run.
    #[arg(long, default_value_t = 24 * 3600)]
    pub token_ttl_secs: u64,
}

/// Everything the server needs to run. Durations are in milliseconds or
/// seconds as their names say, so that environment variables stay plain numbers.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "VRIDGE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Directory for the embedded database and the generated JWT secret.
    #[arg(long, env = "VRIDGE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Create demo users and a demo project at start and print their tokens.
    #[arg(long, env = "VRIDGE_DEMO", default_value_t = false)]
    pub demo: bool,

    /// How long shutdown may take to flush and close, in seconds.
    #[arg(long, env = "VRIDGE_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,

    #[command(flatten)]
    pub store: StoreConfig,

    #[command(flatten)]
    pub sockets: SocketConfig,

    #[command(flatten)]
    pub limits: LimitsConfig,

    #[command(flatten)]
    pub redis: RedisConfig,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub http: HttpConfig,
}

/// The store: where it is, its pool, how the persister writes to it.
/// (`Debug` by hand: the URL's password is redacted.)
#[derive(Clone, Args)]
pub struct StoreConfig {
    /// `sqlite://…` or `postgres://…`; default: SQLite at <data-dir>/vridge.db.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Most connections in the store's pool.
    #[arg(long, env = "VRIDGE_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// Most comments written by one persister flush (one multi-row INSERT).
    #[arg(long, env = "VRIDGE_PERSIST_BATCH", default_value_t = 256)]
    pub persist_batch: usize,
}

/// Each socket's limits and timing, and what the hub bounds per socket
/// (typing, presence, resume).
#[derive(Debug, Clone, Args)]
pub struct SocketConfig {
    /// Concurrent sockets one user may hold; the next is closed with 4029.
    #[arg(long, env = "VRIDGE_MAX_SOCKETS_PER_USER", default_value_t = 5)]
    pub max_sockets_per_user: usize,

    /// Largest accepted client message (and frame), in bytes; larger: close 1009.
    #[arg(long, env = "VRIDGE_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,

    /// Events queued per connection before it counts as a slow consumer (4008).
    #[arg(long, env = "VRIDGE_OUTBOUND_QUEUE", default_value_t = 512)]
    pub outbound_queue: usize,

    /// Most events the writer packs into one `batch` frame.
    #[arg(long, env = "VRIDGE_MAX_BATCH", default_value_t = 64)]
    pub max_batch: usize,

    /// A socket silent this long is pinged (on the keepalive grid), in milliseconds.
    #[arg(long, env = "VRIDGE_PING_INTERVAL_MS", default_value_t = 20_000)]
    pub ping_interval_ms: u64,

    /// A peer silent for this long is closed with 4009, in milliseconds.
    #[arg(long, env = "VRIDGE_PONG_TIMEOUT_MS", default_value_t = 60_000)]
    pub pong_timeout_ms: u64,

    /// A typing indicator lapses after this long without a refresh, in milliseconds.
    #[arg(long, env = "VRIDGE_TYPING_TIMEOUT_MS", default_value_t = 10_000)]
    pub typing_timeout_ms: u64,

    /// A room's typing window, in milliseconds: a typing event in a quiet
    /// room goes out at once and opens the window; those that come while it
    /// is open are held and go out together when it closes, one frame per
    /// socket instead of one per event. Any other event a room sends
    /// flushes them first, so nothing is reordered. 0: send each at once.
    #[arg(long, env = "VRIDGE_TYPING_BATCH_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub typing_batch_ms: u64,

    /// How long a user's `presence_leave` waits after their last socket in a
    /// project closed, in milliseconds; back within it (any node), neither
    /// the leave nor the join is announced. 0: announce at once.
    #[arg(long, env = "VRIDGE_PRESENCE_LEAVE_GRACE_MS", default_value_t = 2_000)]
    pub presence_leave_grace_ms: u64,

    /// Most comments a resume (`?since=`) returns; past it `initial_state`
    /// says `resume_complete: false` and the client resumes again.
    #[arg(long, env = "VRIDGE_RESUME_MAX_COMMENTS", default_value_t = 1000)]
    pub resume_max_comments: u32,

    /// Most bytes of comments a resume returns (their text and fields, as
    /// stored); past it `resume_complete` is false, as past the count. Keeps
    /// one `initial_state` frame well inside the socket's write buffer.
    #[arg(long, env = "VRIDGE_RESUME_MAX_BYTES", default_value_t = 1024 * 1024)]
    pub resume_max_bytes: usize,

    /// Origins whose browser pages may open sockets, comma-separated, besides
    /// the server's own (`*`: any). An upgrade with another `Origin` is
    /// refused with 403 before the handshake (cross-site WebSocket
    /// hijacking); clients that send no `Origin` (not browsers) are allowed.
    #[arg(long, env = "VRIDGE_WS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub ws_allowed_origins: Vec<String>,
}

/// Per-user message and REST write quotas, the per-address upgrade quota,
/// and the switch that lifts them all.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// comment_add messages per user per minute.
    #[arg(long, env = "VRIDGE_LIMIT_COMMENT_ADD", default_value_t = 10)]
    pub limit_comment_add: u32,

    /// typing_indicator messages per user per minute.
    #[arg(long, env = "VRIDGE_LIMIT_TYPING", default_value_t = 30)]
    pub limit_typing: u32,

    /// reaction_add messages per user per minute.
    #[arg(long, env = "VRIDGE_LIMIT_REACTION_ADD", default_value_t = 20)]
    pub limit_reaction_add: u32,

    /// comment_edit, comment_delete, comment_resolve and comment_reopen
    /// messages per user per minute (one quota for the four).
    #[arg(long, env = "VRIDGE_LIMIT_COMMENT_CHANGE", default_value_t = 30)]
    pub limit_comment_change: u32,

    /// Any other message per user per minute (unknown or invalid ones count here).
    #[arg(long, env = "VRIDGE_LIMIT_OTHER", default_value_t = 100)]
    pub limit_other: u32,

    /// Lift every per-message rate limit, the REST write and comment quotas
    /// and the upgrade quota (for benchmarks only).
    #[arg(long, env = "VRIDGE_NO_RATE_LIMITS", default_value_t = false)]
    pub no_rate_limits: bool,

    /// REST writes (POST, PATCH, DELETE other than comments and sign-in)
    /// per user per minute before 429.
    #[arg(long, env = "VRIDGE_LIMIT_REST_WRITE", default_value_t = 60)]
    pub limit_rest_write: u32,

    /// WebSocket upgrade attempts per client address per minute before 429.
    #[arg(long, env = "VRIDGE_LIMIT_UPGRADES_PER_IP", default_value_t = 120)]
    pub limit_upgrades_per_ip: u32,
}

/// The Redis broker, when there is a cluster. (`Debug` by hand: the URL's
/// password is redacted.)
#[derive(Clone, Args)]
pub struct RedisConfig {
    /// `redis://…`: fan events out across nodes with Redis pub/sub, and keep
    /// presence and per-user socket counts cluster-wide; default: one node.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Envelopes the Redis subscriber buffers before it counts them lost
    /// and asks rooms to resync (fred's default of 32 is far too small).
    #[arg(long, env = "VRIDGE_REDIS_RECEIVE_BUFFER", default_value_t = 65_536)]
    pub redis_receive_buffer: usize,

    /// A node whose heartbeat is older than this is dropped from presence
    /// and from socket counts, in milliseconds (heartbeat: a third of it).
    #[arg(long, env = "VRIDGE_NODE_TTL_MS", default_value_t = 15_000)]
    pub node_ttl_ms: u64,
}

/// Token signing and lifetimes, sign-in and sign-up throttling, password
/// hashing.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// HS256 signing secret (at least 32 bytes); default: generated once into
    /// <data-dir>/jwt_secret.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<JwtSecret>,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "VRIDGE_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of refresh tokens, in seconds (default 7 days).
    #[arg(long, env = "VRIDGE_REFRESH_TOKEN_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// RS256 private key (PEM file). With `--jwt-public-key` it replaces HS256:
    /// tokens are then signed and verified with RS256 only.
    #[arg(long, env = "VRIDGE_JWT_PRIVATE_KEY", requires = "jwt_public_key")]
    pub jwt_private_key: Option<PathBuf>,

    /// RS256 public key (PEM file) matching `--jwt-private-key`.
    #[arg(long, env = "VRIDGE_JWT_PUBLIC_KEY", requires = "jwt_private_key")]
    pub jwt_public_key: Option<PathBuf>,

    /// Login attempts per email per minute before 429 (failed or not).
    #[arg(long, env = "VRIDGE_LOGIN_ATTEMPTS_PER_EMAIL", default_value_t = 5)]
    pub login_attempts_per_email: u32,

    /// Login attempts per client IP per minute before 429.
    #[arg(long, env = "VRIDGE_LOGIN_ATTEMPTS_PER_IP", default_value_t = 20)]
    pub login_attempts_per_ip: u32,

    /// Sign-ups per client address per minute before 429.
    #[arg(long, env = "VRIDGE_REGISTER_ATTEMPTS_PER_IP", default_value_t = 10)]
    pub register_attempts_per_ip: u32,

    /// Passwords hashed or verified at once (each holds its argon2 memory,
    /// 19 MiB); 0: the number of CPUs.
    #[arg(long, env = "VRIDGE_PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,

    /// How long a sign-up or sign-in waits for a hashing slot before it is
    /// answered 503, in milliseconds.
    #[arg(long, env = "VRIDGE_PASSWORD_HASH_WAIT_MS", default_value_t = 2_000)]
    pub password_hash_wait_ms: u64,
}

/// The REST API's HTTP surface and the connection limits of the listener.
#[derive(Debug, Clone, Args)]
pub struct HttpConfig {
    /// Origins allowed to call the REST API from a browser, comma-separated
    /// (e.g. `https://app.vridge.example`); empty: no cross-origin access.
    #[arg(long, env = "VRIDGE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest accepted REST request body, in bytes; larger: 413.
    #[arg(long, env = "VRIDGE_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// A REST request taking longer than this is answered 408, in seconds.
    #[arg(long, env = "VRIDGE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// A connection must send a complete request head within this long (its
    /// first request, and each next one on a kept-alive connection), or it
    /// is closed, in milliseconds.
    #[arg(long, env = "VRIDGE_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// Memory for comment history pages served again while their project
    /// has not changed, in bytes; 0 keeps none.
    #[arg(long, env = "VRIDGE_HISTORY_CACHE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub history_cache_bytes: usize,

    /// Open connections (HTTP and sockets) per client address; the next one
    /// is closed at once. 0: no cap (loopback load tests).
    #[arg(long, env = "VRIDGE_MAX_CONNECTIONS_PER_IP", default_value_t = 1024)]
    pub max_connections_per_ip: usize,
}

/// The HS256 signing secret. Its `Debug` shows nothing of it, so that no log
/// or panic message carrying the configuration can leak it; read it with
/// [`JwtSecret::expose`], only where it is used.
#[derive(Clone)]
pub struct JwtSecret(String);

impl JwtSecret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for JwtSecret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// `url` with the password of its user info (`scheme://user:password@host…`)
/// replaced, for logs and panic messages: connection URLs carry credentials.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') {
                ":<redacted>"
            } else {
                ""
            };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redacted_url),
            )
            .field("db_max_connections", &self.db_max_connections)
            .field("persist_batch", &self.persist_batch)
            .finish()
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("redis_url", &self.redis_url.as_deref().map(redacted_url))
            .field("redis_receive_buffer", &self.redis_receive_buffer)
            .field("node_ttl_ms", &self.node_ttl_ms)
            .finish()
    }
}

impl Config {
    /// The store URL, defaulting to the embedded SQLite file.
    pub fn database_url(&self) -> String {
        self.store.url(&self.data_dir)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// A configuration from command-line style arguments, ignoring nothing:
    /// tests use it to start servers with explicit settings.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        let args = std::iter::once(std::ffi::OsString::from("vridge-realtime"))
            .chain(args.into_iter().map(Into::into));
        Only::try_parse_from(args).map(|o| o.config)
    }
}

impl StoreConfig {
    /// The store URL, defaulting to the embedded SQLite file in `data_dir`.
    pub fn url(&self, data_dir: &Path) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("vridge.db").display()))
    }
}

impl SocketConfig {
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms.max(1))
    }

    pub fn pong_timeout(&self) -> Duration {
        Duration::from_millis(self.pong_timeout_ms.max(1))
    }

    pub fn typing_timeout(&self) -> Duration {
        Duration::from_millis(self.typing_timeout_ms.max(1))
    }

    pub fn typing_batch(&self) -> Duration {
        Duration::from_millis(self.typing_batch_ms)
    }

    pub fn presence_leave_grace(&self) -> Duration {
        Duration::from_millis(self.presence_leave_grace_ms)
    }
}

impl RedisConfig {
    pub fn node_ttl(&self) -> Duration {
        Duration::from_millis(self.node_ttl_ms.max(300))
    }
}

impl AuthConfig {
    pub fn password_hash_wait(&self) -> Duration {
        Duration::from_millis(self.password_hash_wait_ms)
    }

    /// Concurrent password hashes: the flag, or the CPUs when it is 0.
    pub fn password_hash_slots(&self) -> usize {
        match self.password_hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

impl HttpConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_product_limits() {
        let c = Config::from_args(["--bind", "127.0.0.1:0", "--data-dir", "/tmp/x"]).unwrap();
        assert_eq!(c.sockets.max_sockets_per_user, 5);
        assert_eq!(c.sockets.max_message_bytes, 65_536);
        assert_eq!(
            (
                c.limits.limit_comment_add,
                c.limits.limit_typing,
                c.limits.limit_reaction_add
            ),
            (10, 30, 20)
        );
        assert!(!c.limits.no_rate_limits);
        assert_eq!(c.database_url(), "sqlite:///tmp/x/vridge.db");
        assert_eq!(c.store.db_max_connections, 10);
        assert_eq!(c.sockets.presence_leave_grace(), Duration::from_secs(2));
        assert_eq!(c.redis.redis_url, None);
        assert_eq!(c.redis.node_ttl(), Duration::from_secs(15));
        assert_eq!(c.auth.access_token_ttl_secs, 900);
        assert_eq!(c.auth.refresh_token_ttl_secs, 7 * 24 * 3600);
        assert_eq!(c.http.max_body_bytes, 65_536);
        assert_eq!(c.http.request_timeout(), Duration::from_secs(30));
        assert_eq!(c.shutdown_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn flags_reach_their_sections() {
        let c = Config::from_args([
            "--database-url",
            "postgres://db/x",
            "--redis-url",
            "redis://r:6379",
            "--no-rate-limits",
            "--ws-allowed-origins",
            "https://a.example,https://b.example",
            "--cors-origins",
            "https://c.example",
            "--login-attempts-per-ip",
            "7",
        ])
        .unwrap();
        assert_eq!(c.database_url(), "postgres://db/x");
        assert_eq!(c.redis.redis_url.as_deref(), Some("redis://r:6379"));
        assert!(c.limits.no_rate_limits);
        assert_eq!(
            c.sockets.ws_allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.http.cors_origins, ["https://c.example"]);
        assert_eq!(c.auth.login_attempts_per_ip, 7);
    }

    #[test]
    fn rs256_key_paths_still_require_each_other() {
        for (given, missing) in [
            ("--jwt-private-key", "--jwt-public-key"),
            ("--jwt-public-key", "--jwt-private-key"),
        ] {
            let err = Config::from_args([given, "/tmp/key.pem"]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
            assert!(err.to_string().contains(missing), "{err}");
        }
        let c = Config::from_args([
            "--jwt-private-key",
            "/tmp/private.pem",
            "--jwt-public-key",
            "/tmp/public.pem",
        ])
        .unwrap();
        assert_eq!(
            c.auth.jwt_private_key.as_deref(),
            Some(Path::new("/tmp/private.pem"))
        );
    }

    #[test]
    fn debug_never_shows_the_passwords_of_the_store_and_redis_urls() {
        let c = Config::from_args([
            "--database-url",
            "postgres://app:pg-pass-word@db:5432/vridge?sslmode=require",
            "--redis-url",
            "redis://:redis-pass-word@cache:6379/0",
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("pass-word"), "{shown}");
        assert!(
            shown.contains("postgres://app:<redacted>@db:5432/vridge?sslmode=require"),
            "{shown}"
        );
        assert!(
            shown.contains("redis://:<redacted>@cache:6379/0"),
            "{shown}"
        );
        // What is used is the URL itself.
        assert_eq!(
            c.database_url(),
            "postgres://app:pg-pass-word@db:5432/vridge?sslmode=require"
        );
    }

    #[test]
    fn urls_without_a_password_are_shown_as_they_are() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "redis://127.0.0.1:6379",
            "sqlite:///tmp/x/vridge.db",
            "postgres://h/db?user=a@b",
            "not a url",
        ] {
            assert_eq!(redacted_url(url), url);
        }
        assert_eq!(
            redacted_url("redis://u:p@h/a@b"),
            "redis://u:<redacted>@h/a@b"
        );
    }

    #[test]
    fn debug_never_shows_the_jwt_secret() {
        let secret = "some-secret-value-that-must-never-be-logged";
        let c = Config::from_args(["--jwt-secret", secret]).unwrap();
        assert_eq!(
            c.auth.jwt_secret.as_ref().map(JwtSecret::expose),
            Some(secret)
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("some-secret"), "{shown}");
        assert!(shown.contains("JwtSecret(<redacted>)"), "{shown}");
        let pretty = format!("{c:#?}");
        assert!(!pretty.contains(secret), "{pretty}");
    }

    #[test]
    fn the_typing_window_is_bounded() {
        let c = Config::from_args(["--typing-batch-ms", "10000"]).unwrap();
        assert_eq!(c.sockets.typing_batch(), Duration::from_secs(10));
        assert_eq!(
            Config::from_args(Vec::<&str>::new())
                .unwrap()
                .sockets
                .typing_batch(),
            Duration::from_millis(250)
        );
        assert!(Config::from_args(["--typing-batch-ms", "10001"]).is_err());
    }
}

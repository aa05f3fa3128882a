//! Where and how sockets connect: the servers (clients spread across them
//! by project, so a project's members share a node and its rooms work with
//! any broker; or by member, so a project's deliveries cross nodes through
//! Redis), the URL path template, the wire encoding, and the local
//! source addresses. One source address has one ephemeral-port range
//! (about 28,000 ports by default), so beyond that sockets are spread over
//! 127.0.0.1, 127.0.0.2, …: each client socket is bound to 127.0.0.N:0
//! before it connects. Only loopback servers are accepted.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};
use vridge_protocol::Encoding;

use crate::provisioning::Member;

/// Sockets per source address before the next address is used; below the
/// default ephemeral range (32768–60999) so each address keeps spare ports.
pub const SOCKETS_PER_SOURCE: usize = 25_000;

/// A connected feedback socket.
pub type Socket = WebSocketStream<TcpStream>;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("server URL {0:?}: expected ws://HOST:PORT or http://HOST:PORT")]
    BadUrl(String),
    #[error("server {0} is not a loopback address; the load generator only targets this machine")]
    NotLoopback(SocketAddr),
    #[error("resolving {0}: {1}")]
    Resolve(String, io::Error),
}

/// Why a socket did not open, named after the limit or failure that stopped
/// it, so a report says which knob to turn.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Io(#[source] io::Error),
    #[error("handshake: {0}")]
    Handshake(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("timed out")]
    Timeout,
}

impl ConnectError {
    /// A short cause for counting: errno names for the limits that matter.
    pub fn cause(&self) -> String {
        match self {
            ConnectError::Io(e) => io_cause(e),
            ConnectError::Handshake(tokio_tungstenite::tungstenite::Error::Io(e)) => io_cause(e),
            ConnectError::Handshake(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                format!("HTTP {}", r.status().as_u16())
            }
            ConnectError::Handshake(e) => format!("handshake: {e}"),
            ConnectError::Timeout => "connect timeout".into(),
        }
    }
}

/// Names an I/O error by its errno where one of the resource limits is the
/// reason, with what to do about it.
pub fn io_cause(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(24) => "EMFILE (open-file limit of this process: ulimit -n)".into(),
        Some(23) => "ENFILE (system-wide open-file limit: fs.file-max)".into(),
        Some(99) => "EADDRNOTAVAIL (no free source port: raise --source-addrs or net.ipv4.ip_local_port_range)".into(),
        Some(98) => "EADDRINUSE".into(),
        Some(111) => "ECONNREFUSED (server down or listen backlog full: net.core.somaxconn)".into(),
        Some(104) => "ECONNRESET".into(),
        Some(110) => "ETIMEDOUT".into(),
        Some(105) => "ENOBUFS".into(),
        _ => match e.kind() {
            io::ErrorKind::UnexpectedEof => "connection closed".into(),
            _ => e.to_string(),
        },
    }
}

/// How members are placed on the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A project's members all on one server (any broker works).
    ByProject,
    /// Members spread over the servers by user id (needs a shared Redis).
    ByMember,
}

/// Everything needed to open a socket for a member.
#[derive(Debug, Clone)]
pub struct Target {
    servers: Vec<SocketAddr>,
    placement: Placement,
    path_template: String,
    pub encoding: Encoding,
    sources: usize,
    /// The last octet of the first source address (1: 127.0.0.1); shards of
    /// one run start at different addresses so their ports do not collide.
    first_source: u8,
    config: WebSocketConfig,
    timeout: Duration,
}

/// Parses `ws://host:port`, `http://host:port` or `host:port` (a path after
/// the authority is ignored: the template gives the path).
fn authority(url: &str) -> Result<&str, TargetError> {
    let rest = ["ws://", "http://"]
        .iter()
        .find_map(|p| url.strip_prefix(p))
        .unwrap_or(url);
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.starts_with("wss://") || url.starts_with("https://") {
        return Err(TargetError::BadUrl(url.into()));
    }
    Ok(host)
}

impl Target {
    /// Resolves every server URL and checks that each is on loopback.
    /// `sources` is the number of source addresses (127.0.0.1 ..= 127.0.0.N).
    pub async fn new(
        urls: &[String],
        path_template: String,
        encoding: Encoding,
        sources: usize,
    ) -> Result<Self, TargetError> {
        Self::with_sources(urls, path_template, encoding, sources, 1).await
    }

    /// As [`Target::new`], with sources starting at 127.0.0.`first_source`.
    pub async fn with_sources(
        urls: &[String],
        path_template: String,
        encoding: Encoding,
        sources: usize,
        first_source: u8,
    ) -> Result<Self, TargetError> {
        let mut servers = Vec::new();
        for url in urls {
            let host = authority(url)?;
            let addr = tokio::net::lookup_host(host)
                .await
                .map_err(|e| TargetError::Resolve(host.into(), e))?
                .find(SocketAddr::is_ipv4)
                .ok_or_else(|| TargetError::BadUrl(url.clone()))?;
            if !addr.ip().is_loopback() {
                return Err(TargetError::NotLoopback(addr));
            }
            servers.push(addr);
        }
        if servers.is_empty() {
            return Err(TargetError::BadUrl(String::new()));
        }
        Ok(Self {
            servers,
            placement: Placement::ByProject,
            path_template,
            encoding,
            sources: sources.clamp(1, 254),
            first_source: first_source.max(1),
            // Small, like the server's: the client must stay cheaper than
            // the server per socket (tungstenite's default is 128 KiB).
            config: WebSocketConfig::default()
                .read_buffer_size(4 * 1024)
                .write_buffer_size(0),
            timeout: Duration::from_secs(30),
        })
    }

    /// The servers, in the order given.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// The request path for a member: `{project_id}`, `{user_id}`,
    /// `{feedback_id}` and `{token}` are replaced.
    pub fn path_for(template: &str, member: &Member) -> String {
        template
            .replace("{project_id}", &member.project_id.to_string())
            .replace("{user_id}", &member.user_id.to_string())
            .replace("{feedback_id}", &member.feedback_id.to_string())
            .replace("{token}", &member.token)
    }

    /// `path` with `query` (`since_seq=5`) appended to its query string.
    pub fn with_query(path: String, query: &str) -> String {
        if query.is_empty() {
            return path;
        }
        let joint = if path.contains('?') { '&' } else { '?' };
        format!("{path}{joint}{query}")
    }

    /// Places members as `placement` says.
    pub fn placed(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// The server a project's members connect to (placed by project).
    pub fn server_for(&self, project_id: i64) -> SocketAddr {
        self.servers[project_id.unsigned_abs() as usize % self.servers.len()]
    }

    /// The index of the server `member` connects to.
    pub fn node_of(&self, member: &Member) -> usize {
        let key = match self.placement {
            Placement::ByProject => member.project_id,
            Placement::ByMember => member.user_id,
        };
        key.unsigned_abs() as usize % self.servers.len()
    }

    /// Whether deliveries between members can cross servers.
    pub fn spreads_members(&self) -> bool {
        self.placement == Placement::ByMember && self.servers.len() > 1
    }

    /// The source address socket `index` binds to: round robin over the
    /// `sources` addresses. Spreading evenly (rather than filling one
    /// address before the next) keeps each address's bound sockets few: the
    /// kernel's search for a free port in `bind()` walks them, and with
    /// 10,000 live and 10,000 TIME_WAIT sockets on one address a reconnect
    /// storm spent most of the load generator's CPU there.
    pub fn source_for(&self, index: usize) -> Ipv4Addr {
        let n = index % self.sources;
        Ipv4Addr::new(127, 0, 0, self.first_source.saturating_add(n as u8))
    }

    /// Opens socket number `index` for `member` and completes the handshake.
    pub async fn connect(&self, index: usize, member: &Member) -> Result<Socket, ConnectError> {
        self.connect_with_query(index, member, "").await
    }

    /// As [`Target::connect`], with `query` (`since_seq=5`) added to the
    /// path's query string.
    pub async fn connect_with_query(
        &self,
        index: usize,
        member: &Member,
        query: &str,
    ) -> Result<Socket, ConnectError> {
        tokio::time::timeout(self.timeout, self.connect_inner(index, member, query))
            .await
            .map_err(|_| ConnectError::Timeout)?
    }

    /// The server `member`'s sockets go to, as `http://HOST:PORT` (for REST).
    pub fn http_base(&self, member: &Member) -> String {
        format!("http://{}", self.servers[self.node_of(member)])
    }

    async fn connect_inner(
        &self,
        index: usize,
        member: &Member,
        query: &str,
    ) -> Result<Socket, ConnectError> {
        let server = self.servers[self.node_of(member)];
        let socket = TcpSocket::new_v4().map_err(ConnectError::Io)?;
        // Always bound: Linux gives an unbound connect() only the ports of
        // one parity (half the ephemeral range), a bind(addr:0) all of them.
        socket
            .bind(SocketAddr::new(IpAddr::V4(self.source_for(index)), 0))
            .map_err(ConnectError::Io)?;
        let stream = socket.connect(server).await.map_err(ConnectError::Io)?;
        let _ = stream.set_nodelay(true);
        let url = format!(
            "ws://{server}{}",
            Self::with_query(Self::path_for(&self.path_template, member), query)
        );
        let mut request = url.into_client_request().map_err(ConnectError::Handshake)?;
        let protocol = match self.encoding {
            Encoding::Json => Encoding::JSON_SUBPROTOCOL,
            Encoding::MsgPack => Encoding::MSGPACK_SUBPROTOCOL,
        };
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
        let (ws, _) = client_async_with_config(request, stream, Some(self.config))
            .await
            .map_err(ConnectError::Handshake)?;
        Ok(ws)
    }
}

/// How many source addresses `sockets` need.
pub fn sources_needed(sockets: usize) -> usize {
    sockets.div_ceil(SOCKETS_PER_SOURCE).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Member {
        Member {
            user_id: 3,
            token: "tok".into(),
            project_id: 7,
            feedback_id: 9,
        }
    }

    #[test]
    fn path_template_and_source_spreading() {
        assert_eq!(
            Target::path_for(
                "/ws/feedback/{project_id}?token={token}&u={user_id}&f={feedback_id}",
                &member()
            ),
            "/ws/feedback/7?token=tok&u=3&f=9"
        );
        assert_eq!(
            Target::with_query("/ws/feedback/7?token=tok".into(), "since_seq=5"),
            "/ws/feedback/7?token=tok&since_seq=5"
        );
        assert_eq!(
            Target::with_query("/ws/7".into(), "since_seq=0"),
            "/ws/7?since_seq=0"
        );
        assert_eq!(Target::with_query("/ws/7".into(), ""), "/ws/7");
        assert_eq!(sources_needed(10), 1);
        assert_eq!(sources_needed(100_000), 4);
        assert_eq!(authority("ws://127.0.0.1:80/x").unwrap(), "127.0.0.1:80");
        assert!(authority("wss://x").is_err());
    }

    #[tokio::test]
    async fn refuses_servers_off_this_machine() {
        let urls = vec!["ws://192.0.2.1:80".to_string()];
        let err = Target::new(&urls, "/".into(), Encoding::Json, 1)
            .await
            .unwrap_err();
        assert!(matches!(err, TargetError::NotLoopback(_)), "{err}");
        let ok = Target::new(
            &["127.0.0.1:9".into(), "localhost:9".into()],
            "/".into(),
            Encoding::Json,
            2,
        )
        .await
        .unwrap();
        assert_eq!(ok.server_for(1).port(), 9);
        assert_eq!(
            ok.server_for(7),
            ok.server_for(9),
            "a project's members share a node"
        );
        assert_eq!(ok.source_for(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(ok.source_for(1), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(
            ok.source_for(2),
            Ipv4Addr::new(127, 0, 0, 1),
            "round robin over the configured addresses"
        );
        let spread = ok.clone().placed(Placement::ByMember);
        let neighbour = Member {
            user_id: 4,
            ..member()
        };
        assert_ne!(
            spread.node_of(&member()),
            spread.node_of(&neighbour),
            "spread: consecutive members on different nodes"
        );
        assert_eq!(ok.node_of(&member()), ok.node_of(&neighbour));
        assert!(spread.spreads_members() && !ok.spreads_members());
        let shard = Target::with_sources(&["127.0.0.1:9".into()], "/".into(), Encoding::Json, 2, 5)
            .await
            .unwrap();
        assert_eq!(shard.source_for(1), Ipv4Addr::new(127, 0, 0, 6));
    }
}

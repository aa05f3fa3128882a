//! Tokens never reach the logs: the whole tracing output of a session, at
//! debug level and for every crate, must not contain the token it used.
//! (Its own test binary, because it installs a global subscriber.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_token_of_a_session_never_appears_in_the_logs() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        // Everything at trace level except the test's own client handshake,
        // which prints the request line it sends (token included).
        .with_env_filter("trace,tungstenite::handshake::client=off")
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();
    let server = TestServer::spawn().await;
    let f = server.fixture().await;
    let token = server.token(f.editor.id);
    let mut client = Client::connect(
        &server.ws_url(f.project.id, &token),
        vridge_protocol::Encoding::Json,
    )
    .await;
    client.next().await;
    client
        .send(&comment_add(f.feedback[0], "logged?", Some("l1")))
        .await;
    client.expect(is_ack).await;
    let expired = Client::connect(
        &format!("{}x", server.ws_url(f.project.id, &token)),
        vridge_protocol::Encoding::Json,
    )
    .await
    .ended()
    .await;
    assert_eq!(
        expired,
        Ended::Closed(vridge_protocol::close::UNAUTHENTICATED)
    );
    drop(client);
    server.stop().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("ws{project_id="),
        "the session span is logged"
    );
    let signature = token.rsplit('.').next().unwrap();
    let leaks: Vec<&str> = text.lines().filter(|l| l.contains(signature)).collect();
    assert!(
        leaks.is_empty(),
        "a token leaked into the logs:\n{}",
        leaks.join("\n")
    );
    assert!(
        !text.contains("token="),
        "a query string leaked into the logs"
    );
}

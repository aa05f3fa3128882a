//! The binary's operator surface: `token`, `--demo`, and the README's
//! configuration table staying true to the real flags.

mod common;

use std::process::Command;
use std::time::Duration;

use clap::CommandFactory;
use common::*;
use vridge_protocol::{Encoding, ServerMessage};
use vridge_realtime::auth::JwtKeys;
use vridge_realtime::auth::secret::load_or_generate;
use vridge_realtime::config::Cli;
use vridge_realtime::demo;

#[test]
fn token_subcommand_mints_a_token_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vridge-realtime"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["token", "--user", "42", "--ttl-secs", "120"])
        .env_remove("JWT_SECRET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let secret = load_or_generate(None, dir.path()).unwrap();
    let keys = JwtKeys::hs256(&secret, Duration::from_secs(900));
    assert_eq!(keys.verify_access(token.trim()), Ok(42));
    let other = JwtKeys::hs256(&[1u8; 32], Duration::from_secs(900));
    assert!(other.verify_access(token.trim()).is_err());
}

#[tokio::test]
async fn demo_seeds_three_roles_whose_urls_connect_and_is_idempotent() {
    let server = TestServer::spawn().await;
    let seeded = demo::seed(&server.state, server.addr).await.unwrap();
    assert_eq!(seeded.users.len(), 3);
    assert_eq!(seeded.feedback_ids.len(), 2);
    for user in &seeded.users {
        let mut client = Client::connect(&user.url, Encoding::Json).await;
        match client.next().await {
            ServerMessage::InitialState(state) => assert_eq!(state.project_id, seeded.project_id),
            other => panic!("{:?}: {other:?}", user.role),
        }
    }
    let again = demo::seed(&server.state, server.addr).await.unwrap();
    assert_eq!(again.project_id, seeded.project_id);
    assert_eq!(again.feedback_ids, seeded.feedback_ids);
    assert!(seeded.describe().contains(&seeded.users[0].url));
    assert!(seeded.describe().contains(&seeded.page));
}

#[tokio::test]
async fn demo_passwords_sign_in_once_printed_and_a_rerun_replaces_them() {
    let server = TestServer::spawn().await;
    let first = demo::seed(&server.state, server.addr).await.unwrap();
    let http = reqwest::Client::new();
    let login = |email: String, password: String| {
        let http = http.clone();
        let url = server.http("/auth/login");
        async move {
            http.post(url)
                .json(&serde_json::json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for user in &first.users {
        assert!(first.describe().contains(&user.password));
        assert_eq!(
            login(user.user.email.clone(), user.password.clone()).await,
            200
        );
    }
    let again = demo::seed(&server.state, server.addr).await.unwrap();
    let (old, new) = (&first.users[0], &again.users[0]);
    assert_ne!(old.password, new.password);
    assert_eq!(
        login(old.user.email.clone(), old.password.clone()).await,
        401
    );
    assert_eq!(
        login(new.user.email.clone(), new.password.clone()).await,
        200
    );
}

#[test]
fn every_flag_and_env_var_is_in_the_readme_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let cli = Cli::command();
    let mut checked = 0;
    for arg in cli.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        assert!(
            readme.contains(&format!("| `--{long}` |")),
            "README lacks --{long}"
        );
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            assert!(readme.contains(&format!("`{env}`")), "README lacks {env}");
        }
        checked += 1;
    }
    assert!(checked >= 20);
}

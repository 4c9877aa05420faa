//! The operator's commands: `moim --version`, `moim check-config` and
//! `moim backup`, run as the real binary.

mod common;

use common::people::person;
use common::redis_server::RedisServer;
use common::smtp_server::SmtpServer;
use common::{postgres_admin_url, spawn_app, Backend};
use sqlx::Connection;
use std::process::Command;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn moim(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_moim"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("MOIM_LISTEN")
        .env_remove("MOIM_SMTP_URL")
        .env_remove("MOIM_TURN_SECRET")
        .envs(envs.iter().copied())
        .output()
        .expect("run moim");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// A site root with the directory check-config looks for.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("site dir");
    std::fs::create_dir(dir.path().join("pkg")).expect("pkg dir");
    dir
}

#[test]
fn version_names_the_release() {
    let run = moim(&["--version"], &[]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        format!("moim {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_names_an_unreachable_database_without_its_password() {
    let site = site();
    let run = moim(
        &[
            "--site-root",
            &site.path().display().to_string(),
            "check-config",
        ],
        &[("DATABASE_URL", "postgres://moim:hunter2@127.0.0.1:9/moim")],
    );
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("moim: DATABASE_URL")),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("FAIL  DATABASE_URL "), "{}", run.stdout);
    assert!(!run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"));
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn check_config_names_an_unreachable_redis() {
    let site = site();
    let data = tempfile::tempdir().unwrap();
    let run = moim(
        &[
            "--site-root",
            &site.path().display().to_string(),
            "--data-dir",
            &data.path().display().to_string(),
            "check-config",
        ],
        // Port 9 (discard) on loopback: nothing listens there.
        &[("REDIS_URL", "redis://:sesame@127.0.0.1:9/")],
    );
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr.lines().any(|l| l.starts_with("moim: REDIS_URL")),
        "{}",
        run.stderr
    );
    // The database was fine: only Redis is at fault.
    assert!(
        run.stdout.contains("ok    MOIM_DATA_DIR "),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("sesame") && !run.stderr.contains("sesame"));
}

#[test]
fn check_config_names_a_site_root_without_the_built_site() {
    let empty = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let run = moim(
        &[
            "--site-root",
            &empty.path().display().to_string(),
            "--data-dir",
            &data.path().display().to_string(),
            "check-config",
        ],
        &[],
    );
    assert!(!run.ok);
    assert!(
        run.stderr.contains("moim: LEPTOS_SITE_ROOT"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_passes_with_everything_reachable_and_hides_secrets() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start();
    let site = site();
    let mut args = vec![
        "--site-root".to_string(),
        site.path().display().to_string(),
        "--turn-urls".into(),
        "turn:127.0.0.1:3479".into(),
        "--turn-secret".into(),
        "open-sesame-turn".into(),
        "--metrics-listen".into(),
        "0.0.0.0:9999".into(),
    ];
    args.extend(smtp.args());
    args.push("check-config".into());
    let database = postgres_admin_url();
    let redis_url = redis.url();
    let run = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        moim(
            &args,
            &[
                ("DATABASE_URL", database.as_str()),
                ("REDIS_URL", redis_url.as_str()),
            ],
        )
    })
    .await
    .unwrap();
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    for setting in [
        "DATABASE_URL",
        "REDIS_URL",
        "MOIM_SMTP_URL",
        "MOIM_TURN_URLS",
    ] {
        assert!(
            run.stdout.contains(&format!("ok    {setting:<20}")),
            "{setting}: {}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("open-sesame-turn"), "{}", run.stdout);
    assert!(
        run.stdout.contains("(secret set, hidden)"),
        "{}",
        run.stdout
    );
    // A metrics address anyone can reach is pointed out.
    assert!(run.stdout.contains("not on loopback"), "{}", run.stdout);
    assert!(run.stdout.contains("all good"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_live_sqlite_database() {
    let app = spawn_app(Backend::Sqlite).await;
    person(&app, "ann").await;
    person(&app, "bob").await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("moim-backup.db");
    let database = app.database_url.clone();
    let target = copy.display().to_string();
    // While the instance runs (and keeps its WAL open).
    let run = tokio::task::spawn_blocking({
        let database = database.clone();
        let target = target.clone();
        move || moim(&["backup", &target], &[("DATABASE_URL", database.as_str())])
    })
    .await
    .unwrap();
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("backed up"), "{}", run.stdout);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds session ids: owner only");
    }

    let mut restored = sqlx::SqliteConnection::connect(&format!("sqlite://{target}?mode=ro"))
        .await
        .expect("the copy opens");
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut restored)
        .await
        .expect("users in the copy");
    assert_eq!(users, 2);
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut restored)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");

    // An existing file is never overwritten.
    let again = tokio::task::spawn_blocking(move || {
        moim(&["backup", &target], &[("DATABASE_URL", database.as_str())])
    })
    .await
    .unwrap();
    assert!(!again.ok);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
}

#[test]
fn backup_of_postgres_points_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x.db").display().to_string();
    let run = moim(
        &["backup", &target],
        &[("DATABASE_URL", "postgres://moim:hunter2@127.0.0.1:9/moim")],
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("pg_dump"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

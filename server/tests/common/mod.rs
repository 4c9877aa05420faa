//! `spawn_app`: a real moim instance on a random port with a fresh
//! database (a temporary SQLite file, or a new PostgreSQL database).
#![allow(dead_code)]

use moim_server::config::Config;
use moim_server::Application;
use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use sqlx::Connection;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Panics in this test process outside the tests' own code, counted by a
/// hook installed with the first server. A panic in one of a server's tasks (a connection, a
/// render) does not fail the test that caused it: the task dies, the
/// client sees a closed connection or nothing, and the test may still
/// pass. `TestApp` therefore fails its test when dropped if anything
/// panicked while it ran (tests that mean to panic do not exist here).
static PANICS: AtomicU64 = AtomicU64::new(0);

/// leptos_i18n 0.6.2 spawns an effect (writing its language cookie) that
/// can run after the request's reactive owner is gone, once the response
/// has been sent: it panics in a detached task and nothing is lost. Set
/// aside by its exact message (scripts/test.sh does the same for the
/// end-to-end servers); every other panic counts.
fn is_known_upstream_race(info: &std::panic::PanicHookInfo<'_>) -> bool {
    let message = info
        .payload()
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| info.payload().downcast_ref::<&str>().copied())
        .unwrap_or_default();
    message.contains("leptos_i18n-0.6.2/src/context.rs")
        && message.contains("already been disposed")
}

fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A failing assertion of a test already fails that test; only
            // panics elsewhere (moim's code, its dependencies) are counted.
            let in_a_test = info
                .location()
                .is_some_and(|l| l.file().starts_with("server/tests/"));
            if !in_a_test && !is_known_upstream_race(info) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on. `scripts/test.sh`
/// sets it (starting a throwaway server when none runs); tests never skip
/// when it is unreachable, they fail.
pub fn postgres_admin_url() -> String {
    std::env::var("MOIM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// Where `/metrics` is served (its own listener).
    pub metrics_addr: SocketAddr,
    pub base: String,
    pub backend: Backend,
    pub state: app::state::AppState,
    pub database_url: String,
    _data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    postgres_db: Option<String>,
    /// Taken (and sent) by `kill`; behind a lock so an instance shared
    /// between tasks can be killed by one of them.
    kill: std::sync::Mutex<Option<std::sync::mpsc::Sender<std::sync::mpsc::Sender<()>>>>,
    killed: std::sync::atomic::AtomicBool,
    panics_before: u64,
}

pub mod chatter;
pub mod people;
pub mod redis_server;
pub mod smtp_server;
pub mod ws;

pub struct Spawn {
    pub backend: Backend,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<String>,
    /// More command-line flags for moim.
    pub extra_args: Vec<String>,
    /// Share this database with another instance instead of a fresh one.
    pub database_url: Option<String>,
    /// Run on a runtime of its own, so `TestApp::kill` can make the
    /// instance vanish at once (connections, timers and all).
    pub killable: bool,
}

impl Spawn {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            public_url: None,
            trusted_proxies: None,
            extra_args: Vec::new(),
            database_url: None,
            killable: false,
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(Spawn::new(backend)).await
}

pub async fn spawn_with(spawn: Spawn) -> TestApp {
    count_panics();
    let panics_before = PANICS.load(Ordering::SeqCst);
    // Server logs go through the test harness (shown for failing tests).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("MOIM_TEST_LOG").unwrap_or_else(|_| "warn".to_string()))
        .with_test_writer()
        .try_init();
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (database_url, postgres_db) = match (&spawn.database_url, spawn.backend) {
        (Some(shared), _) => (shared.clone(), None),
        (None, backend) => match backend {
            Backend::Sqlite => (
                format!("sqlite://{}/moim.db?mode=rwc", data_dir.path().display()),
                None,
            ),
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("moim_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                panic!("PostgreSQL is not reachable at {admin} ({e}); run scripts/test.sh, which starts one")
            });
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let url = match admin.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("bad MOIM_TEST_POSTGRES_URL {admin}"),
                };
                (url, Some(name))
            }
        },
    };
    let mut args = vec![
        "moim".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--database-url".into(),
        database_url.clone(),
        "--data-dir".into(),
        data_dir.path().display().to_string(),
        "--log".into(),
        "warn".into(),
        // Many instances in one process: each its own free port.
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend(spawn.extra_args.iter().cloned());
    if let Some(proxies) = &spawn.trusted_proxies {
        args.push("--trusted-proxies".into());
        args.push(proxies.clone());
    }
    if let Some(url) = &spawn.public_url {
        args.push("--public-url".into());
        args.push(url.clone());
    }
    let config = <Config as clap::Parser>::parse_from(args);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, metrics_addr, state, kill) = if spawn.killable {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<()>>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let app = runtime
                .block_on(Application::build(config))
                .expect("app builds");
            let _ = ready_tx.send((app.local_addr(), app.metrics_addr(), app.state().clone()));
            runtime.spawn(app.run_until(async move {
                let _ = stopped.await;
            }));
            // Dropped or killed: everything on this runtime stops at once,
            // and the killer hears when it has (no task of it runs after
            // `kill` returns, as after kill -9).
            let done = kill_rx.recv().ok();
            runtime.shutdown_timeout(Duration::from_secs(5));
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
        let (addr, metrics_addr, state) = ready_rx.await.expect("instance started");
        (addr, metrics_addr, state, Some(kill_tx))
    } else {
        let app = Application::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let state = app.state().clone();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        (addr, metrics_addr, state, None)
    };
    TestApp {
        addr,
        metrics_addr,
        base: format!("http://{addr}"),
        backend: spawn.backend,
        state,
        database_url,
        _data_dir: data_dir,
        stop: Some(stop),
        postgres_db,
        kill: std::sync::Mutex::new(kill),
        killed: std::sync::atomic::AtomicBool::new(false),
        panics_before,
    }
}

impl TestApp {
    /// Ends the instance like `kill -9` would: no goodbyes to anyone.
    pub fn kill(&self) {
        let kill = self.kill.lock().map(|mut k| k.take()).unwrap_or_default();
        if let Some(kill) = kill {
            self.killed.store(true, Ordering::SeqCst);
            let (done, stopped) = std::sync::mpsc::channel();
            if kill.send(done).is_ok() {
                // Its runtime has stopped when this returns: a test that
                // then drops a client's connection must not see the killed
                // instance notice it (it would say goodbye for it).
                let _ = stopped.recv_timeout(Duration::from_secs(10));
            }
        }
    }

    /// Whether `kill` ended it (what a load balancer's health check would
    /// know).
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Asks the instance to stop as on SIGTERM (drain, then close).
    pub fn terminate(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// The status `path` answers with, or 0 when the instance does not
    /// answer at all (killed): for health probes.
    pub async fn status_of(&self, path: &str) -> u16 {
        match reqwest::get(self.url(path)).await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// A browser-like client: keeps cookies, sends our Origin, does not
    /// follow redirects (so tests can see them).
    pub fn client(&self) -> reqwest::Client {
        self.client_with_jar().0
    }

    /// A client and its cookie jar (to open a WebSocket with the same
    /// session).
    pub fn client_with_jar(&self) -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        (self.client_on(jar.clone()), jar)
    }

    pub fn client_on(&self, jar: std::sync::Arc<reqwest::cookie::Jar>) -> reqwest::Client {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(&self.base).expect("origin"));
        reqwest::Client::builder()
            .cookie_provider(jar)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Calls a server function with form fields, as the browser does.
    pub async fn call(
        &self,
        client: &reqwest::Client,
        function: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        client
            .post(self.url(&format!("/api/{function}")))
            .form(fields)
            .send()
            .await
            .expect("request")
    }

    pub async fn sign_up(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.call(
            client,
            "sign_up",
            &[
                ("username", username),
                ("display_name", &format!("{username} Display")),
                ("email", ""),
                ("password", password),
            ],
        )
        .await
    }

    /// A new account (display name = username), signed in on its own client.
    pub async fn signed_up_client(&self, username: &str, email: &str) -> reqwest::Client {
        people::person_with_email(self, username, email)
            .await
            .client
    }

    pub async fn sign_in(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.call(
            client,
            "sign_in",
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// `/metrics` from the instance's metrics listener, checked to be the
    /// Prometheus text format.
    pub async fn scrape_metrics(&self) -> String {
        let response = reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .expect("metrics answer");
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        response.text().await.expect("metrics body")
    }

    /// The viewer as the server sees this client.
    pub async fn viewer(&self, client: &reqwest::Client) -> serde_json::Value {
        let response = self.call(client, "current_viewer", &[]).await;
        assert_eq!(response.status(), 200, "current_viewer failed");
        response.json().await.expect("json")
    }

    pub async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.state.db)
            .await
            .expect("count");
        n
    }

    /// Drops the database out from under the running app (PostgreSQL) or
    /// closes its pool (SQLite): the database becomes unreachable.
    pub async fn make_database_unreachable(&self) {
        match &self.postgres_db {
            Some(name) => {
                let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
                    .await
                    .expect("admin connection");
                sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .expect("drop database");
            }
            None => self.state.db.close().await,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.kill();
        if let Some(name) = self.postgres_db.take() {
            // Best effort, on a thread of its own: Drop cannot be async.
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async {
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .execute(&mut conn)
                            .await;
                        }
                    });
                }
            })
            .join();
        }
        // Last, once everything above is cleaned up.
        let panics = PANICS.load(Ordering::SeqCst) - self.panics_before;
        if panics > 0 && !std::thread::panicking() {
            panic!(
                "{panics} panic(s) in moim's code while this test's server ran (see the \
                 messages; a test running at the same time may have caused them): a server \
                 must not panic"
            );
        }
    }
}

/// Runs one async test body against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Two killable instances on one fresh PostgreSQL database and `redis`,
/// each with `extra_args` too.
pub async fn cluster(redis: &redis_server::RedisServer, extra_args: &[&str]) -> (TestApp, TestApp) {
    let spawn = |database_url: Option<String>| {
        let mut spawn = Spawn::new(Backend::Postgres);
        spawn.extra_args = ["--redis-url", &redis.url()]
            .iter()
            .chain(extra_args)
            .map(|arg| arg.to_string())
            .collect();
        spawn.database_url = database_url;
        spawn.killable = true;
        spawn
    };
    let one = spawn_with(spawn(None)).await;
    let two = spawn_with(spawn(Some(one.database_url.clone()))).await;
    (one, two)
}

/// The value of the series written exactly as `series` (name and labels)
/// in a scrape; panics when it is not there.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

//! Accounts and sessions, end to end over HTTP, on SQLite and PostgreSQL.

mod common;

use common::{spawn_app, spawn_with, Backend, Spawn};
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";

/// Form fields, or (field, problem) pairs.
type Fields<'a> = &'a [(&'a str, &'a str)];

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        // `__Host-moim.sid` when the public URL is https.
        .find(|v| v.starts_with("moim.sid=") || v.starts_with("__Host-moim.sid="))
        .map(|v| v.to_string())
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

fn username_of(viewer: &Value) -> Option<&str> {
    viewer.get("User")?.get("username")?.as_str()
}

on_both_databases!(
    sign_up_sign_in_sign_out,
    session_id_changes_at_sign_in,
    cookie_replayed_after_sign_out_is_refused,
    cross_origin_requests_are_refused,
    failed_sign_ins_are_throttled_with_one_answer,
    passwords_are_never_stored_in_clear,
    bad_input_is_refused_and_nothing_stored,
    changing_password_ends_other_sessions,
    guests_get_an_identity_in_the_session,
    expired_sessions_are_refused,
    readiness_follows_the_database,
);

async fn sign_up_sign_in_sign_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.client();
    assert_eq!(app.viewer(&client).await, Value::Null);

    let response = app.sign_up(&client, "Alice", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let viewer = app.viewer(&client).await;
    assert_eq!(username_of(&viewer), Some("Alice"));
    assert_eq!(viewer["User"]["display_name"], "Alice Display");

    let response = app.call(&client, "sign_out", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.viewer(&client).await, Value::Null);

    // Usernames are matched case-insensitively at sign-in.
    let response = app.sign_in(&client, "alice", PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert_eq!(username_of(&app.viewer(&client).await), Some("Alice"));
    assert_eq!(app.count("users").await, 1);
}

async fn session_id_changes_at_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let setup = app.client();
    assert_eq!(app.sign_up(&setup, "bob", PASSWORD).await.status(), 200);

    // An anonymous visitor gets a session (as a guest)...
    let client = app.client();
    let response = app
        .call(&client, "continue_as_guest", &[("display_name", "Visitor")])
        .await;
    assert_eq!(response.status(), 200);
    let before = cookie_pair(&session_cookie(&response).expect("guest session cookie"));

    // ...and signing in issues a different id; the old one is gone.
    let response = app.sign_in(&client, "bob", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let after = cookie_pair(&session_cookie(&response).expect("new session cookie"));
    assert_ne!(before, after, "session id must change at sign-in");

    let replay = reqwest::Client::new()
        .post(app.url("/api/current_viewer"))
        .header(ORIGIN, &app.base)
        .header(COOKIE, &before)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.json::<Value>().await.unwrap(), Value::Null);
    assert_eq!(username_of(&app.viewer(&client).await), Some("bob"));
}

async fn cookie_replayed_after_sign_out_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.client();
    let response = app.sign_up(&client, "carol", PASSWORD).await;
    let cookie = cookie_pair(&session_cookie(&response).expect("cookie"));
    assert!(app.count("sessions").await >= 1);

    assert_eq!(app.call(&client, "sign_out", &[]).await.status(), 200);
    assert_eq!(
        app.count("sessions").await,
        0,
        "sign-out deletes the server-side session"
    );

    let replay = reqwest::Client::new()
        .post(app.url("/api/current_viewer"))
        .header(ORIGIN, &app.base)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap(), Value::Null);

    // The profile page, with the stale cookie, sends the visitor to sign in.
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/profile"))
        .header(COOKIE, &cookie)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 302);
    assert_eq!(page.headers()[LOCATION], "/signin?next=/profile");
}

async fn cross_origin_requests_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let form = [
        ("username", "mallory"),
        ("display_name", "M"),
        ("email", ""),
        ("password", PASSWORD),
    ];
    let bare = reqwest::Client::new();
    let foreign = bare
        .post(app.url("/api/sign_up"))
        .header(ORIGIN, "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let cross_site = bare
        .post(app.url("/api/sign_up"))
        .header("sec-fetch-site", "cross-site")
        .header(ORIGIN, &app.base)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let no_origin = bare
        .post(app.url("/api/sign_up"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), 403);
    assert_eq!(app.count("users").await, 0, "nothing stored");

    // State-changing server functions are not reachable by GET.
    let get = bare
        .get(app.url(
            "/api/sign_up?username=mallory&display_name=M&email=&password=correct+horse+battery",
        ))
        .header(ORIGIN, &app.base)
        .send()
        .await
        .unwrap();
    assert!(!get.status().is_success(), "GET answered {}", get.status());
    assert_eq!(app.count("users").await, 0, "nothing stored");

    // The same request from our own origin goes through.
    let same = bare
        .post(app.url("/api/sign_up"))
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 200);
    assert_eq!(app.count("users").await, 1);
}

async fn failed_sign_ins_are_throttled_with_one_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.client();
    assert_eq!(app.sign_up(&client, "dave", PASSWORD).await.status(), 200);
    app.call(&client, "sign_out", &[]).await;

    // Unknown user and wrong password: the same status and body.
    let unknown = app.sign_in(&client, "nobody", "whatever-password").await;
    let unknown_status = unknown.status();
    let unknown_body = unknown.text().await.unwrap();
    let wrong = app.sign_in(&client, "dave", "wrong-password").await;
    assert_eq!(wrong.status(), unknown_status);
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.text().await.unwrap(), unknown_body);
    assert_eq!(unknown_body, "\"BadCredentials\"");

    for _ in 0..4 {
        let response = app.sign_in(&client, "dave", "wrong-password").await;
        assert_eq!(response.status(), 401);
    }
    // Five failures for the account: even the right password waits now.
    let locked = app.sign_in(&client, "dave", PASSWORD).await;
    assert_eq!(locked.status(), 429);
    let body: Value = locked.json().await.unwrap();
    assert!(
        body["TooManyAttempts"]["retry_after_secs"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(app.viewer(&client).await, Value::Null);
}

async fn passwords_are_never_stored_in_clear(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.client();
    assert_eq!(app.sign_up(&client, "erin", PASSWORD).await.status(), 200);
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    let sessions: Vec<(String,)> = sqlx::query_as("SELECT data FROM sessions")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    assert!(!sessions.is_empty());
    for (data,) in sessions {
        assert!(!data.contains(PASSWORD), "session data holds the password");
        assert!(!data.contains("argon2"), "session data holds the hash");
    }
}

async fn bad_input_is_refused_and_nothing_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.client();
    let cases: &[(Fields, Fields)] = &[
        (
            &[
                ("username", ""),
                ("display_name", ""),
                ("email", ""),
                ("password", ""),
            ],
            &[
                ("username", "Required"),
                ("display_name", "Required"),
                ("password", "Required"),
            ],
        ),
        (
            &[
                ("username", "x y"),
                ("display_name", "ok"),
                ("email", "not-an-email"),
                ("password", "short"),
            ],
            &[
                ("username", "InvalidChars"),
                ("email", "EmailInvalid"),
                ("password", "TooShort"),
            ],
        ),
    ];
    for (fields, expected) in cases {
        let response = app.call(&client, "sign_up", fields).await;
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        let errors = body["Invalid"].as_array().expect("field errors");
        for (field, problem) in *expected {
            assert!(
                errors
                    .iter()
                    .any(|e| e["field"] == *field && e["problem"] == *problem),
                "{field}: {problem} missing in {body}"
            );
        }
    }
    let long_name = "n".repeat(65);
    let response = app
        .call(
            &client,
            "sign_up",
            &[
                ("username", "frank"),
                ("display_name", &long_name),
                ("email", ""),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(app.count("users").await, 0);

    // Duplicates, case-insensitively: refused, politely, on the field.
    assert_eq!(app.sign_up(&client, "Frank", PASSWORD).await.status(), 200);
    let other = app.client();
    let response = app.sign_up(&other, "FRANK", PASSWORD).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Invalid"][0]["field"], "username");
    assert_eq!(body["Invalid"][0]["problem"], "UsernameTaken");
    assert_eq!(app.count("users").await, 1);

    // A body over the size limit is refused before it reaches any handler.
    let huge = "x".repeat(200 * 1024);
    let response = app
        .call(
            &other,
            "sign_in",
            &[("username", "frank"), ("password", &huge)],
        )
        .await;
    assert_eq!(response.status(), 413);
}

async fn changing_password_ends_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.client();
    let phone = app.client();
    assert_eq!(app.sign_up(&laptop, "gina", PASSWORD).await.status(), 200);
    assert_eq!(app.sign_in(&phone, "gina", PASSWORD).await.status(), 200);
    assert_eq!(username_of(&app.viewer(&phone).await), Some("gina"));

    let wrong = app
        .call(
            &laptop,
            "change_password",
            &[
                ("current_password", "nope-nope"),
                ("new_password", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(
        username_of(&app.viewer(&phone).await),
        Some("gina"),
        "a failed change ends nothing"
    );

    let changed = app
        .call(
            &laptop,
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        username_of(&app.viewer(&laptop).await),
        Some("gina"),
        "this session goes on"
    );
    assert_eq!(
        app.viewer(&phone).await,
        Value::Null,
        "the other session is over"
    );

    let fresh = app.client();
    assert_eq!(app.sign_in(&fresh, "gina", PASSWORD).await.status(), 401);
    assert_eq!(
        app.sign_in(&fresh, "gina", "a brand new secret")
            .await
            .status(),
        200
    );

    let renamed = app
        .call(&fresh, "update_profile", &[("display_name", "  Gina   K ")])
        .await;
    assert_eq!(renamed.status(), 200);
    assert_eq!(app.viewer(&fresh).await["User"]["display_name"], "Gina K");
    let anonymous = app.client();
    let refused = app
        .call(&anonymous, "update_profile", &[("display_name", "x")])
        .await;
    assert_eq!(refused.status(), 401);
}

async fn guests_get_an_identity_in_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.client();
    let response = app
        .call(
            &client,
            "continue_as_guest",
            &[("display_name", "<b>Kim</b>")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let viewer = app.viewer(&client).await;
    assert_eq!(viewer["Guest"]["display_name"], "<b>Kim</b>");
    assert!(viewer["Guest"]["id"]
        .as_str()
        .unwrap()
        .starts_with("guest-"));
    assert_eq!(app.count("users").await, 0, "a guest is not an account");

    let empty = app
        .call(&client, "continue_as_guest", &[("display_name", "  ")])
        .await;
    assert_eq!(empty.status(), 422);

    // A signed-in user does not become a guest.
    let user = app.client();
    app.sign_up(&user, "hana", PASSWORD).await;
    let refused = app
        .call(&user, "continue_as_guest", &[("display_name", "Hana")])
        .await;
    assert_eq!(refused.status(), 403);
}

async fn expired_sessions_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let idle = app.client();
    app.sign_up(&idle, "ian", PASSWORD).await;
    let absolute = app.client();
    app.sign_in(&absolute, "ian", PASSWORD).await;
    assert_eq!(app.count("sessions").await, 2);

    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, data FROM sessions")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    // Idle: the first session's deadline has passed.
    sqlx::query("UPDATE sessions SET expiry_ms = 1 WHERE id = $1")
        .bind(&rows[0].0)
        .execute(&app.state.db)
        .await
        .unwrap();
    // Absolute: the second was signed in longer ago than the maximum.
    let mut data: Value = serde_json::from_str(&rows[1].1).unwrap();
    data["auth"]["signed_in_at_ms"] = Value::from(1_000);
    sqlx::query("UPDATE sessions SET data = $1 WHERE id = $2")
        .bind(data.to_string())
        .bind(&rows[1].0)
        .execute(&app.state.db)
        .await
        .unwrap();

    let viewers = [app.viewer(&idle).await, app.viewer(&absolute).await];
    assert_eq!(viewers, [Value::Null, Value::Null]);

    // The clean-up task's sweep removes expired records.
    let fresh = app.client();
    app.sign_in(&fresh, "ian", PASSWORD).await;
    sqlx::query("UPDATE sessions SET expiry_ms = 1 WHERE id <> $1")
        .bind("none")
        .execute(&app.state.db)
        .await
        .unwrap();
    let live = app.client();
    app.sign_in(&live, "ian", PASSWORD).await;
    assert!(app.count("sessions").await >= 2);
    use tower_sessions::ExpiredDeletion;
    moim_server::session_store::DbSessionStore::new(app.state.db.clone())
        .delete_expired()
        .await
        .unwrap();
    assert_eq!(
        app.count("sessions").await,
        1,
        "only the live session is left"
    );
    assert_eq!(username_of(&app.viewer(&live).await), Some("ian"));
}

async fn readiness_follows_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.make_database_unreachable().await;
    let ready = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("database"));
    assert_eq!(
        client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn session_cookie_attributes() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = app.client();
    let response = app.sign_up(&client, "joan", PASSWORD).await;
    let cookie = session_cookie(&response).expect("cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Max-Age=43200"), "idle expiry: {cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http must not set Secure: {cookie}"
    );

    let https = spawn_with(Spawn {
        public_url: Some("https://meet.example.org".to_string()),
        ..Spawn::new(Backend::Sqlite)
    })
    .await;
    let response = reqwest::Client::new()
        .post(https.url("/api/sign_up"))
        .header(ORIGIN, "https://meet.example.org")
        .form(&[
            ("username", "joan"),
            ("display_name", "Jo"),
            ("email", ""),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response).expect("cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.starts_with("__Host-moim.sid="), "{cookie}");
}

#[tokio::test]
async fn pages_render_on_the_server() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let home = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let headers = home.headers().clone();
    let html = home.text().await.unwrap();
    assert!(
        html.contains("<h1 data-testid=\"home-title\">"),
        "server-rendered heading"
    );
    assert!(
        html.contains("/pkg/") && html.contains("/moim.js"),
        "hydration script"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));

    let missing = client.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("404"));

    // Responses are compressed for clients that accept it.
    let compressed = client
        .get(app.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()["content-encoding"], "gzip");

    // Korean is chosen from the browser's language.
    let korean = client
        .get(app.url("/"))
        .header("accept-language", "ko-KR,ko;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(korean.contains("내 서버에서"), "Korean landing page");
}

/// 30 failed sign-ins (for different accounts) from one address lock that
/// address; behind a trusted proxy the address is the forwarded one, and
/// from anyone else a forged `X-Forwarded-For` changes nothing.
#[tokio::test]
async fn client_throttling_follows_trusted_proxies_only() {
    async fn fail_from(app: &common::TestApp, forwarded: &str, attempt: usize) -> u16 {
        app.client()
            .post(app.url("/api/sign_in"))
            .header("x-forwarded-for", forwarded)
            .form(&[
                ("username", format!("nobody{attempt}")),
                ("password", "wrong password".to_string()),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    let behind_proxy = spawn_with(Spawn {
        trusted_proxies: Some("127.0.0.1".to_string()),
        ..Spawn::new(Backend::Sqlite)
    })
    .await;
    for attempt in 0..30 {
        assert_eq!(fail_from(&behind_proxy, "203.0.113.7", attempt).await, 401);
    }
    assert_eq!(
        fail_from(&behind_proxy, "203.0.113.7", 99).await,
        429,
        "that client is locked"
    );
    assert_eq!(
        fail_from(&behind_proxy, "203.0.113.8", 99).await,
        401,
        "another client is not"
    );

    let direct = spawn_app(Backend::Sqlite).await;
    for attempt in 0..30 {
        let forged = format!("198.51.100.{attempt}");
        assert_eq!(fail_from(&direct, &forged, attempt).await, 401);
    }
    assert_eq!(
        fail_from(&direct, "198.51.100.250", 99).await,
        429,
        "forged headers do not help"
    );
}

/// The stored data of the app's one session.
async fn the_only_session(app: &common::TestApp) -> String {
    let (data,): (String,) = sqlx::query_as("SELECT data FROM sessions")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    data
}

/// A plain form post (before the page is interactive, or JavaScript off)
/// that is refused comes back to the form filled in as it was sent, once,
/// and the password is kept nowhere: not in the page, not in the session.
#[tokio::test]
async fn a_refused_plain_post_comes_back_filled_in_without_the_password() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = app.client();
    let secret_attempt = "tiny7";
    let response = client
        .post(app.url("/api/sign_up"))
        .header("accept", "text/html")
        .header("referer", app.url("/signup?next=/meetings"))
        .form(&[
            ("username", "dora_plain"),
            (
                "display_name",
                "Dora <Plain></script><script>alert(1)</script>",
            ),
            ("password", secret_attempt),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let back = response.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(back.contains("__err="), "{back}");
    assert!(
        !back.contains("dora_plain"),
        "typed values stay out of the address: {back}"
    );

    let stored = the_only_session(&app).await;
    assert!(
        stored.contains("dora_plain"),
        "the typed username is kept: {stored}"
    );
    assert!(
        !stored.contains(secret_attempt),
        "the password is never kept: {stored}"
    );

    let page = client
        .get(&back)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"value="dora_plain""#), "username kept");
    // As text, escaped: what someone typed never becomes markup.
    assert!(
        html.contains(
            r#"value="Dora &lt;Plain&gt;&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;""#
        ),
        "display name kept, escaped"
    );
    // Also where the page carries it to the browser code (a script).
    assert!(!html.contains("<script>alert(1)"), "never markup");
    assert!(
        !html.contains(secret_attempt),
        "the password is not sent back"
    );

    // Once: the same page again is the empty form (the error stays, as it
    // is in the address).
    let again = client
        .get(&back)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!again.contains(r#"value="dora_plain""#), "shown only once");
    let left = the_only_session(&app).await;
    assert!(
        !left.contains("dora_plain"),
        "taken out of the session: {left}"
    );
}

//! People for call tests: a signed-up account with its own cookie jar, and
//! the steps into a meeting's call. Cookies are per host, not per port, so
//! the same person can open calls on every test instance (WebSocket
//! upgrades carry the instance's own Origin).

use super::ws::{open, Ws};
use super::TestApp;
use app::protocol::{PeerInfo, ServerMessage};
use reqwest::cookie::Jar;
use reqwest::Client;
use std::sync::Arc;

#[derive(Clone)]
pub struct Person {
    pub client: Client,
    pub jar: Arc<Jar>,
    pub name: String,
}

/// Signs up `name` (display name the same) on `app`.
pub async fn person(app: &TestApp, name: &str) -> Person {
    person_with_email(app, name, "").await
}

/// Signs up `name` with the (unverified) address `email`.
pub async fn person_with_email(app: &TestApp, name: &str, email: &str) -> Person {
    let (client, jar) = app.client_with_jar();
    let response = app
        .call(
            &client,
            "sign_up",
            &[
                ("username", name),
                ("display_name", name),
                ("email", email),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200, "sign up {name}");
    Person {
        client,
        jar,
        name: name.to_string(),
    }
}

/// An instant meeting by `host` with `invitees` (usernames, comma-separated)
/// let straight in; extra form fields as given.
pub async fn instant_meeting(
    app: &TestApp,
    host: &Person,
    invitees: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut fields = vec![
        ("title", "Design review"),
        ("instant", "1"),
        ("invitees", invitees),
        ("waiting_room", "on"),
        ("allow_guests", "on"),
    ];
    fields.extend_from_slice(extra);
    let response = app.call(&host.client, "schedule_meeting", &fields).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("code")
}

/// A meeting by `people[0]` with the others invited, everyone admitted.
pub async fn meeting_with_everyone(app: &TestApp, people: &[Person]) -> String {
    let invitees: Vec<&str> = people[1..].iter().map(|p| p.name.as_str()).collect();
    let response = app
        .call(
            &people[0].client,
            "schedule_meeting",
            &[
                ("title", "Chat test"),
                ("instant", "1"),
                ("invitees", &invitees.join(",")),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let code: String = response.json().await.unwrap();
    for p in people {
        let response = app
            .call(
                &p.client,
                "enter_meeting",
                &[("code", &code), ("display_name", "")],
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    code
}

/// Asks to enter; returns the admission ("Admitted", "Waiting", …).
pub async fn enter(app: &TestApp, who: &Person, code: &str, name: &str) -> serde_json::Value {
    let response = app
        .call(
            &who.client,
            "enter_meeting",
            &[("code", code), ("display_name", name)],
        )
        .await;
    assert_eq!(response.status(), 200, "enter_meeting");
    response.json().await.expect("admission")
}

/// Connects to the call and joins (optionally resuming a peer id).
pub async fn join_call(
    app: &TestApp,
    who: &Person,
    code: &str,
    resume: Option<String>,
) -> (Ws, PeerInfo, ServerMessage) {
    let mut ws = open(app, &who.jar, code).await.open();
    let welcome = ws.join(resume).await;
    let ServerMessage::Welcome { you, .. } = &welcome else {
        unreachable!("join returns a welcome")
    };
    (ws, you.clone(), welcome)
}

/// Marks `username`'s email address as verified, straight in the database:
/// for tests that are about what a verified address allows, not about how
/// it is verified (that is `tests/email.rs`).
pub async fn mark_verified(app: &TestApp, username: &str) {
    let done = sqlx::query(
        "UPDATE users SET email_verified_at_ms = 1 WHERE username_key = $1 AND email IS NOT NULL",
    )
    .bind(username.to_lowercase())
    .execute(&app.state.db)
    .await
    .expect("mark verified");
    assert_eq!(done.rows_affected(), 1, "{username} has an address");
}

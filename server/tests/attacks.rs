//! The attack suite: moim tried the way an attacker would, one module per
//! attack class, each test named after the attack it tries. Every server
//! function and every client message type appears at least once with a
//! caller who must be refused; `every_server_function_is_attacked` fails
//! when a new server function is added without joining the tables here.
//!
//! More attacks live beside the features they concern (rights on a live
//! socket: `live_rights.rs`; throttles: `accounts.rs`; chat: `chat.rs`).

mod common;

use app::protocol::{ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};
use common::people::{enter, instant_meeting, join_call, person, Person};
use common::ws::{offer, open, open_with};
use common::{spawn_app, Backend, TestApp};
use std::collections::BTreeSet;

/// Every server function with a plausible set of fields (`{code}` stands
/// for the meeting under attack, `{victim}` for a participant id in it).
const SERVER_FUNCTIONS: &[(&str, &[(&str, &str)])] = &[
    ("current_viewer", &[]),
    (
        "sign_up",
        &[
            ("username", "mallory"),
            ("display_name", "Mallory"),
            ("email", ""),
            ("password", "correct horse battery"),
        ],
    ),
    (
        "sign_in",
        &[("username", "ann"), ("password", "correct horse battery")],
    ),
    ("sign_out", &[]),
    ("continue_as_guest", &[("display_name", "Mallory")]),
    ("email_status", &[]),
    ("resend_verification", &[]),
    (
        "verify_email",
        &[("token", "forged-token-0123456789abcdef")],
    ),
    ("mail_configured", &[]),
    ("update_profile", &[("display_name", "Mallory")]),
    (
        "change_password",
        &[
            ("current_password", "correct horse battery"),
            ("new_password", "taken over for good"),
        ],
    ),
    ("chat_transcript", &[("code", "{code}")]),
    ("ice_servers", &[("code", "{code}")]),
    ("self_test_servers", &[("code", "{code}")]),
    ("door_state", &[("code", "{code}")]),
    (
        "enter_meeting",
        &[("code", "{code}"), ("display_name", "Mallory")],
    ),
    ("list_knocks", &[("code", "{code}")]),
    (
        "decide_knock",
        &[
            ("code", "{code}"),
            ("participant_id", "*"),
            ("decision", "admit"),
        ],
    ),
    (
        "remove_participant",
        &[("code", "{code}"), ("participant_id", "{victim}")],
    ),
    ("list_meetings", &[]),
    ("get_meeting", &[("code", "{code}")]),
    (
        "schedule_meeting",
        &[("title", "Phishing"), ("instant", "1")],
    ),
    (
        "update_meeting",
        &[
            ("code", "{code}"),
            ("title", "Taken over"),
            ("duration_minutes", "30"),
        ],
    ),
    ("cancel_meeting", &[("code", "{code}")]),
    ("set_cohosts", &[("code", "{code}"), ("cohosts", "mallory")]),
    ("list_api_tokens", &[]),
    (
        "create_api_token",
        &[("name", "exfiltrate"), ("scope", "manage")],
    ),
    ("revoke_api_token", &[("id", "*")]),
    ("list_webhooks", &[]),
    (
        "create_webhook",
        &[("url", "https://hooks.example.org/moim")],
    ),
    ("remove_webhook", &[("id", "*")]),
];

/// Functions that change or reveal a meeting: only its hosts may use them.
const HOST_ONLY: &[&str] = &[
    "list_knocks",
    "decide_knock",
    "remove_participant",
    "update_meeting",
    "cancel_meeting",
    "set_cohosts",
];

/// Functions a stranger without any session may not use.
const NEEDS_IDENTITY: &[&str] = &[
    "email_status",
    "resend_verification",
    "update_profile",
    "change_password",
    "chat_transcript",
    "ice_servers",
    "self_test_servers",
    "list_knocks",
    "decide_knock",
    "remove_participant",
    "list_meetings",
    "schedule_meeting",
    "update_meeting",
    "cancel_meeting",
    "set_cohosts",
    "list_api_tokens",
    "create_api_token",
    "revoke_api_token",
    "list_webhooks",
    "create_webhook",
    "remove_webhook",
];

/// Whether `name` refused the call: an error status, or (for the chat
/// transcript, which is part of the meeting page and answers everyone) a
/// body that reveals nothing.
async fn refused(name: &str, response: reqwest::Response, statuses: &[u16]) -> Result<(), String> {
    let status = response.status().as_u16();
    if statuses.contains(&status) {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    if name == "chat_transcript" && status == 200 && body == "\"NotParticipant\"" {
        return Ok(());
    }
    Err(format!("{name} answered {status}: {body}"))
}

fn fields(template: &[(&str, &str)], code: &str, victim: &str) -> Vec<(String, String)> {
    template
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.replace("{code}", code).replace("{victim}", victim),
            )
        })
        .collect()
}

fn template(name: &str) -> &'static [(&'static str, &'static str)] {
    SERVER_FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("{name} is not in SERVER_FUNCTIONS"))
}

async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    name: &str,
    code: &str,
    victim: &str,
) -> reqwest::Response {
    client
        .post(app.url(&format!("/api/{name}")))
        .form(&fields(template(name), code, victim))
        .send()
        .await
        .expect("request")
}

/// Ann hosts a meeting Bob is in; the ids the attacks aim at.
struct Scene {
    app: TestApp,
    ann: Person,
    bob: Person,
    code: String,
    bob_id: String,
}

async fn scene(backend: Backend) -> Scene {
    let app = spawn_app(backend).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    enter(&app, &ann, &code, "").await;
    enter(&app, &bob, &code, "").await;
    let bob_id: (String,) = sqlx::query_as("SELECT id FROM users WHERE username = 'bob'")
        .fetch_one(&app.state.db)
        .await
        .expect("bob's id");
    Scene {
        app,
        ann,
        bob,
        code,
        bob_id: bob_id.0,
    }
}

/// What an attack must not have changed.
async fn meeting_untouched(scene: &Scene) {
    let row: (String, Option<i64>, i64) = sqlx::query_as(
        "SELECT title, cancelled_at, (SELECT COUNT(*) FROM meeting_cohosts c WHERE c.meeting_id = m.id) \
         FROM meetings m WHERE code = $1",
    )
    .bind(&scene.code)
    .fetch_one(&scene.app.state.db)
    .await
    .expect("meeting row");
    assert_eq!(row.0, "Design review", "title changed");
    assert_eq!(row.1, None, "meeting cancelled");
    assert_eq!(row.2, 0, "co-hosts changed");
    let bob: (String,) = sqlx::query_as(
        "SELECT a.state FROM meeting_admissions a JOIN meetings m ON m.id = a.meeting_id \
         WHERE m.code = $1 AND a.participant_id = $2",
    )
    .bind(&scene.code)
    .bind(&scene.bob_id)
    .fetch_one(&scene.app.state.db)
    .await
    .expect("bob's admission");
    assert_eq!(bob.0, "admitted", "bob's admission changed");
}

on_both_databases!(
    csrf_every_server_function_refuses_a_foreign_origin,
    authentication_strangers_are_refused_everything_that_needs_an_identity,
    idor_a_signed_in_outsider_cannot_touch_someone_elses_meeting,
    idor_a_participant_cannot_use_host_functions,
    waiting_room_bypass_a_knocking_guest_gets_nothing_of_the_call,
    enumeration_wrong_guessed_and_cancelled_links_look_alike,
    injection_markup_and_sql_in_every_text_field_stay_text,
    exhaustion_oversized_bodies_and_frames_are_refused,
    messages_every_client_message_is_refused_before_join,
    messages_host_actions_and_cross_room_signals_are_refused,
);

#[test]
fn every_server_function_is_attacked() {
    // Registration happens when the app's server functions are linked in;
    // naming one makes sure the crate is.
    let _ = app::auth::current_viewer;
    let registered: BTreeSet<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.trim_start_matches("/api/").to_string())
        .collect();
    let attacked: BTreeSet<String> = SERVER_FUNCTIONS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert!(!registered.is_empty(), "no server functions registered");
    assert_eq!(
        registered, attacked,
        "every server function must be in the attack tables"
    );
}

async fn csrf_every_server_function_refuses_a_foreign_origin(backend: Backend) {
    let scene = scene(backend).await;
    let app = &scene.app;
    // The host's own cookie, sent by a page on another site.
    for (name, _) in SERVER_FUNCTIONS {
        for (header, value) in [
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ] {
            let response = scene
                .ann
                .client
                .post(app.url(&format!("/api/{name}")))
                .header(header, value)
                .form(&fields(template(name), &scene.code, &scene.bob_id))
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 403, "{name} with {header}: {value}");
        }
    }
    meeting_untouched(&scene).await;
    // The WebSocket too (no CORS protects it).
    let upgrade = open_with(app, &scene.ann.jar, &scene.code, "https://evil.example").await;
    assert_eq!(upgrade.status(), 403);
    let viewer = app.call(&scene.ann.client, "current_viewer", &[]).await;
    assert_eq!(viewer.status(), 200);
    let viewer: serde_json::Value = viewer.json().await.expect("viewer");
    assert!(!viewer.is_null(), "the host is still signed in");
}

async fn authentication_strangers_are_refused_everything_that_needs_an_identity(backend: Backend) {
    let scene = scene(backend).await;
    let app = &scene.app;
    let stranger = app.client();
    for name in NEEDS_IDENTITY {
        let response = post(app, &stranger, name, &scene.code, &scene.bob_id).await;
        if let Err(why) = refused(name, response, &[401, 403, 404]).await {
            panic!("a stranger: {why}");
        }
    }
    meeting_untouched(&scene).await;
    assert_eq!(
        open(app, &app.client_with_jar().1, &scene.code)
            .await
            .status(),
        401
    );
    // A forged verification token proves nothing.
    let forged = post(app, &stranger, "verify_email", &scene.code, &scene.bob_id).await;
    assert!(forged.status().as_u16() < 500);
    let verified: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM users WHERE email_verified_at_ms IS NOT NULL")
            .fetch_one(&app.state.db)
            .await
            .expect("count");
    assert_eq!(verified.0, 0, "a forged token verified an address");
    for path in ["chat.txt", "chat.md"] {
        let response = stranger
            .get(app.url(&format!("/m/{}/{path}", scene.code)))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        assert!([401, 403, 404, 409].contains(&status), "{path}: {status}");
    }
}

async fn idor_a_signed_in_outsider_cannot_touch_someone_elses_meeting(backend: Backend) {
    let scene = scene(backend).await;
    let app = &scene.app;
    let eve = person(app, "eve").await;
    for name in HOST_ONLY
        .iter()
        .chain(["chat_transcript", "ice_servers", "self_test_servers"].iter())
    {
        let response = post(app, &eve.client, name, &scene.code, &scene.bob_id).await;
        if let Err(why) = refused(name, response, &[403, 404, 409]).await {
            panic!("an outsider: {why}");
        }
    }
    meeting_untouched(&scene).await;
    // Eve's own list does not show Ann's meeting.
    let list = app.call(&eve.client, "list_meetings", &[]).await;
    let text = list.text().await.expect("body");
    assert!(
        !text.contains(&scene.code),
        "an outsider's list shows the meeting"
    );
}

async fn idor_a_participant_cannot_use_host_functions(backend: Backend) {
    let scene = scene(backend).await;
    let app = &scene.app;
    for name in HOST_ONLY {
        let response = post(app, &scene.bob.client, name, &scene.code, &scene.bob_id).await;
        let status = response.status().as_u16();
        assert!(
            [403, 404].contains(&status),
            "{name} answered {status} to a participant"
        );
    }
    meeting_untouched(&scene).await;
}

async fn waiting_room_bypass_a_knocking_guest_gets_nothing_of_the_call(backend: Backend) {
    let scene = scene(backend).await;
    let app = &scene.app;
    let (guest, jar) = app.client_with_jar();
    let admission = app
        .call(
            &guest,
            "enter_meeting",
            &[("code", scene.code.as_str()), ("display_name", "Mallory")],
        )
        .await;
    assert_eq!(admission.status(), 200);
    let admission: serde_json::Value = admission.json().await.expect("admission");
    assert_eq!(admission, serde_json::json!("Waiting"));
    // Knocking again, or deciding on its own knock, does not open the door.
    let again = app
        .call(
            &guest,
            "enter_meeting",
            &[("code", scene.code.as_str()), ("display_name", "Mallory")],
        )
        .await;
    assert_eq!(
        again.json::<serde_json::Value>().await.expect("admission"),
        serde_json::json!("Waiting")
    );
    let guest_id: (String,) = sqlx::query_as(
        "SELECT participant_id FROM meeting_admissions WHERE is_guest = 1 AND state = 'waiting'",
    )
    .fetch_one(&app.state.db)
    .await
    .expect("the knock");
    let decided = app
        .call(
            &guest,
            "decide_knock",
            &[
                ("code", scene.code.as_str()),
                ("participant_id", guest_id.0.as_str()),
                ("decision", "admit"),
            ],
        )
        .await;
    assert!([401, 403].contains(&decided.status().as_u16()));
    for name in ["ice_servers", "chat_transcript"] {
        let response = post(app, &guest, name, &scene.code, &scene.bob_id).await;
        if let Err(why) = refused(name, response, &[401, 403, 409]).await {
            panic!("a waiting guest: {why}");
        }
    }
    assert_eq!(open(app, &jar, &scene.code).await.status(), 403);
    let state: (String,) =
        sqlx::query_as("SELECT state FROM meeting_admissions WHERE participant_id = $1")
            .bind(&guest_id.0)
            .fetch_one(&app.state.db)
            .await
            .expect("state");
    assert_eq!(state.0, "waiting");
}

async fn enumeration_wrong_guessed_and_cancelled_links_look_alike(backend: Backend) {
    let scene = scene(backend).await;
    let app = &scene.app;
    let other = instant_meeting(app, &scene.ann, "", &[]).await;
    let cancelled = app
        .call(
            &scene.ann.client,
            "cancel_meeting",
            &[("code", other.as_str())],
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    let guessed = "abcdefghjkmnpqrstvwxyz2345"[..scene.code.len()].to_string();
    let mut answers = Vec::new();
    for code in [
        other.as_str(),
        guessed.as_str(),
        "../../etc/passwd",
        "'; --",
    ] {
        let response = app
            .call(&scene.bob.client, "get_meeting", &[("code", code)])
            .await;
        answers.push((
            response.status().as_u16(),
            response.text().await.expect("body"),
        ));
        let page = scene
            .bob
            .client
            .get(app.url(&format!("/m/{}", urlencode(code))))
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), 404, "page for {code:?}");
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(answers[0].0, 404);
    // Unknown user and wrong password answer alike.
    let (c1, _) = app.client_with_jar();
    let unknown = app
        .call(
            &c1,
            "sign_in",
            &[("username", "nobody"), ("password", "whatever pass")],
        )
        .await;
    let (c2, _) = app.client_with_jar();
    let wrong = app
        .call(
            &c2,
            "sign_in",
            &[("username", "ann"), ("password", "whatever pass")],
        )
        .await;
    assert_eq!(unknown.status(), wrong.status());
    assert_eq!(unknown.text().await.ok(), wrong.text().await.ok());
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn injection_markup_and_sql_in_every_text_field_stay_text(backend: Backend) {
    let app = spawn_app(backend).await;
    // Short enough for a display name (64 characters); the `</title>` is
    // for the page title, which leptos_meta writes unescaped.
    let payload = "</title><script>alert(1)</script>'--\"><img src=x onerror=a()>";
    let (client, _) = app.client_with_jar();
    let response = app
        .call(
            &client,
            "sign_up",
            &[
                ("username", "mallory"),
                ("display_name", payload),
                ("email", ""),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .call(
            &client,
            "schedule_meeting",
            &[
                ("title", payload),
                ("description", payload),
                ("instant", "1"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let code: String = response.json().await.expect("code");
    let page = client
        .get(app.url(&format!("/m/{code}")))
        .header("accept", "text/html")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    if let Some(at) = page.find("<script>alert(1)") {
        let start = at.saturating_sub(300);
        panic!(
            "markup reached the page: …{}…",
            &page[start..(at + 200).min(page.len())]
        );
    }
    if let Some(at) = page.find("<img src=x") {
        let start = at.saturating_sub(300);
        panic!(
            "markup reached the page: …{}…",
            &page[start..(at + 200).min(page.len())]
        );
    }
    assert!(
        page.contains("&lt;script&gt;alert(1)"),
        "the text is shown as text"
    );
    assert_eq!(
        page.matches("</title>").count(),
        1,
        "the page title was broken out of"
    );
    let users: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.db)
        .await
        .expect("the users table is still there");
    assert_eq!(users.0, 1);
    let stored: (String,) = sqlx::query_as("SELECT title FROM meetings WHERE code = $1")
        .bind(&code)
        .fetch_one(&app.state.db)
        .await
        .expect("title");
    assert_eq!(stored.0, payload, "stored exactly as typed, as data");
}

async fn exhaustion_oversized_bodies_and_frames_are_refused(backend: Backend) {
    let scene = scene(backend).await;
    let app = &scene.app;
    let big = "x".repeat(200 * 1024);
    let response = scene
        .ann
        .client
        .post(app.url("/api/update_profile"))
        .form(&[("display_name", big.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 413);
    let (mut ws, _, _) = join_call(app, &scene.ann, &scene.code, None).await;
    ws.send_text(&"y".repeat(70 * 1024)).await;
    assert_eq!(ws.closed_with().await, app::protocol::close::TOO_BIG);
    // Past the media-server description's larger limit, and past the
    // transport's backstop: 1009 as well, not a broken connection.
    for size in [400 * 1024, 700 * 1024] {
        let (mut ws, _, _) = join_call(app, &scene.ann, &scene.code, None).await;
        ws.send_text(&"z".repeat(size)).await;
        assert_eq!(
            ws.closed_with().await,
            app::protocol::close::TOO_BIG,
            "{size} bytes"
        );
    }
}

/// One of each client message, as an attacker would send them.
fn every_client_message(peer: &str) -> Vec<ClientMessage> {
    vec![
        ClientMessage::Ping,
        ClientMessage::Signal {
            to: peer.into(),
            signal: offer(),
        },
        ClientMessage::Media {
            media: Default::default(),
        },
        ClientMessage::Leave,
        ClientMessage::AskToMute { peer: peer.into() },
        ClientMessage::Remove { peer: peer.into() },
        ClientMessage::EndMeeting,
        ClientMessage::ChatSend {
            key: "k1".into(),
            text: "hello".into(),
            to: None,
        },
        ClientMessage::ChatSync { after: 0 },
        ClientMessage::ChatHistory { before: 100 },
        ClientMessage::LowerHand { peer: peer.into() },
        ClientMessage::React {
            reaction: app::protocol::Reaction::Clap,
        },
        ClientMessage::MediaServerSignal { signal: offer() },
        ClientMessage::MediaServerClose,
        ClientMessage::MediaServerWatch {
            peers: vec![peer.into()],
            heights: vec![app::protocol::media_server::TileHeight {
                peer: peer.into(),
                height: 720,
            }],
        },
    ]
}

async fn messages_every_client_message_is_refused_before_join(backend: Backend) {
    let scene = scene(backend).await;
    let app = &scene.app;
    let (_ann_ws, ann_peer, _) = join_call(app, &scene.ann, &scene.code, None).await;
    let mut ws = open(app, &scene.bob.jar, &scene.code).await.open();
    let messages = every_client_message(&ann_peer.peer_id);
    assert_eq!(
        messages.len() + 1,
        16,
        "join plus fifteen: update when the protocol grows"
    );
    for message in messages {
        ws.send(&message).await;
        let answer = ws.recv().await;
        assert!(
            matches!(
                answer,
                ServerMessage::Error {
                    code: ErrorCode::NotJoined,
                    ..
                }
            ),
            "{message:?} before join got {answer:?}"
        );
    }
    // A join with a version the server does not speak is refused too.
    ws.send(&ClientMessage::Join {
        version: PROTOCOL_VERSION + 1,
        resume: None,
        media: Default::default(),
    })
    .await;
    let (answers, code) = ws.drain_until_close().await;
    assert!(answers.iter().any(|m| matches!(
        m,
        ServerMessage::Error {
            code: ErrorCode::VersionUnsupported,
            ..
        }
    )));
    assert_eq!(code, app::protocol::close::VERSION);
    meeting_untouched(&scene).await;
}

async fn messages_host_actions_and_cross_room_signals_are_refused(backend: Backend) {
    let scene = scene(backend).await;
    let app = &scene.app;
    let (mut ann_ws, ann_peer, _) = join_call(app, &scene.ann, &scene.code, None).await;
    let (mut bob_ws, bob_peer, _) = join_call(app, &scene.bob, &scene.code, None).await;
    // Another meeting, another room.
    let cat = person(app, "cat").await;
    let cat_code = instant_meeting(app, &cat, "", &[]).await;
    enter(app, &cat, &cat_code, "").await;
    let (mut cat_ws, cat_peer, _) = join_call(app, &cat, &cat_code, None).await;

    for message in [
        ClientMessage::AskToMute {
            peer: ann_peer.peer_id.clone(),
        },
        ClientMessage::Remove {
            peer: ann_peer.peer_id.clone(),
        },
        ClientMessage::EndMeeting,
    ] {
        bob_ws.send(&message).await;
        let answer = bob_ws
            .recv_until(|m| matches!(m, ServerMessage::Error { .. }))
            .await;
        assert!(
            matches!(
                answer,
                ServerMessage::Error {
                    code: ErrorCode::Forbidden,
                    ..
                }
            ),
            "{message:?} by a participant got {answer:?}"
        );
    }
    // Signals, mute requests and removals never cross into another room.
    for message in [
        ClientMessage::Signal {
            to: cat_peer.peer_id.clone(),
            signal: offer(),
        },
        ClientMessage::AskToMute {
            peer: cat_peer.peer_id.clone(),
        },
        ClientMessage::Remove {
            peer: cat_peer.peer_id.clone(),
        },
    ] {
        ann_ws.send(&message).await;
        let answer = ann_ws
            .recv_until(|m| matches!(m, ServerMessage::Error { .. }))
            .await;
        assert!(
            matches!(
                answer,
                ServerMessage::Error {
                    code: ErrorCode::UnknownPeer,
                    ..
                }
            ),
            "{message:?} across rooms got {answer:?}"
        );
    }
    // A private message to someone outside the room is refused and stored nowhere.
    ann_ws
        .send(&ClientMessage::ChatSend {
            key: "private-1".into(),
            text: "psst".into(),
            to: Some(cat_peer.peer_id.clone()),
        })
        .await;
    let answer = ann_ws
        .recv_until(|m| matches!(m, ServerMessage::Error { .. }))
        .await;
    assert!(matches!(answer, ServerMessage::Error { .. }), "{answer:?}");
    // Cat got none of it.
    cat_ws.send(&ClientMessage::Ping).await;
    let first = cat_ws.recv().await;
    assert_eq!(first, ServerMessage::Pong, "cat received {first:?}");
    let _ = bob_peer;
    meeting_untouched(&scene).await;
}

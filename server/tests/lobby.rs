//! The waiting room: who goes straight in, who knocks, and who decides.

mod common;

use common::{spawn_app, spawn_with, Backend, Spawn, TestApp};
use reqwest::Client;
use serde_json::Value;

async fn user(app: &TestApp, name: &str) -> Client {
    app.signed_up_client(name, "").await
}

async fn instant(app: &TestApp, host: &Client, extra: &[(&str, &str)]) -> String {
    let mut fields = vec![("title", "Stand-up"), ("instant", "1")];
    fields.extend_from_slice(extra);
    let response = app.call(host, "schedule_meeting", &fields).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn enter(app: &TestApp, client: &Client, code: &str, name: &str) -> reqwest::Response {
    app.call(
        client,
        "enter_meeting",
        &[("code", code), ("display_name", name)],
    )
    .await
}

async fn decide(
    app: &TestApp,
    client: &Client,
    code: &str,
    participant: &str,
    decision: &str,
) -> reqwest::Response {
    app.call(
        client,
        "decide_knock",
        &[
            ("code", code),
            ("participant_id", participant),
            ("decision", decision),
        ],
    )
    .await
}

/// Enters and returns the admission ("Admitted", "Waiting", …).
async fn entered(app: &TestApp, client: &Client, code: &str, name: &str) -> Value {
    let response = enter(app, client, code, name).await;
    assert_eq!(response.status(), 200, "enter_meeting failed");
    response.json().await.unwrap()
}

async fn admission(app: &TestApp, client: &Client, code: &str) -> Value {
    let response = app.call(client, "door_state", &[("code", code)]).await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["admission"].clone()
}

async fn knocks(app: &TestApp, client: &Client, code: &str) -> Vec<Value> {
    let response = app.call(client, "list_knocks", &[("code", code)]).await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    serde_json::from_value(page["knocks"].clone()).unwrap()
}

on_both_databases!(knock_admit_deny_remove, guests_and_opening_hours);

async fn knock_admit_deny_remove(backend: Backend) {
    let app = spawn_app(backend).await;
    let host = user(&app, "chair").await;
    let invitee = user(&app, "member").await;
    let outsider = user(&app, "passerby").await;
    let guest = app.client();
    let code = instant(
        &app,
        &host,
        &[
            ("waiting_room", "on"),
            ("allow_guests", "on"),
            ("invitees", "member"),
        ],
    )
    .await;

    // The guest arrives before the host: they wait, and keep waiting when
    // the host arrives. Nobody is let in by timing.
    let knocked = enter(&app, &guest, &code, "Visiting <i>Kim</i>").await;
    assert_eq!(knocked.status(), 200);
    assert_eq!(knocked.json::<Value>().await.unwrap(), "Waiting");
    assert_eq!(entered(&app, &host, &code, "").await, "Admitted");
    assert_eq!(admission(&app, &guest, &code).await, "Waiting");

    // Invitees go straight in; other signed-in people knock.
    assert_eq!(entered(&app, &invitee, &code, "").await, "Admitted");
    assert_eq!(entered(&app, &outsider, &code, "").await, "Waiting");

    let waiting = knocks(&app, &host, &code).await;
    let names: Vec<&str> = waiting
        .iter()
        .map(|k| k["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Visiting <i>Kim</i>", "passerby"]);
    assert_eq!(waiting[0]["is_guest"], true);

    // Only hosts and co-hosts see and decide knocks.
    for client in [&guest, &invitee, &outsider] {
        assert_eq!(
            app.call(client, "list_knocks", &[("code", &code)])
                .await
                .status(),
            403
        );
        let decided = decide(&app, client, &code, "*", "admit").await;
        assert_eq!(decided.status(), 403);
    }
    assert_eq!(
        admission(&app, &guest, &code).await,
        "Waiting",
        "nothing changed"
    );

    let guest_id = waiting[0]["participant_id"].as_str().unwrap().to_string();
    let outsider_id = waiting[1]["participant_id"].as_str().unwrap().to_string();
    let admit = decide(&app, &host, &code, &guest_id, "admit").await;
    assert_eq!(admit.status(), 200);
    assert_eq!(admission(&app, &guest, &code).await, "Admitted");
    let deny = decide(&app, &host, &code, &outsider_id, "deny").await;
    assert_eq!(deny.status(), 200);
    assert_eq!(admission(&app, &outsider, &code).await, "Denied");
    // A decision stands: knocking again does not put them back in line.
    assert_eq!(entered(&app, &outsider, &code, "").await, "Denied");
    assert!(knocks(&app, &host, &code).await.is_empty());

    // Removed people cannot come straight back.
    let removed = app
        .call(
            &host,
            "remove_participant",
            &[("code", &code), ("participant_id", &guest_id)],
        )
        .await;
    assert_eq!(removed.status(), 200);
    assert_eq!(entered(&app, &guest, &code, "Kim again").await, "Removed");

    // A co-host decides for everyone waiting at once.
    app.call(
        &host,
        "set_cohosts",
        &[("code", &code), ("cohosts", "member")],
    )
    .await;
    let late = [app.client(), app.client()];
    for (i, client) in late.iter().enumerate() {
        let name = format!("Late {i}");
        assert_eq!(entered(&app, client, &code, &name).await, "Waiting");
    }
    let all = decide(&app, &invitee, &code, "*", "admit").await;
    assert_eq!(all.json::<Value>().await.unwrap(), 2);
    for client in &late {
        assert_eq!(admission(&app, client, &code).await, "Admitted");
    }
}

async fn guests_and_opening_hours(backend: Backend) {
    let app = spawn_app(backend).await;
    let host = user(&app, "organiser").await;

    // Guests not allowed: a visitor without an account must sign in.
    let members_only = instant(&app, &host, &[("waiting_room", "on")]).await;
    let stranger = app.client();
    assert_eq!(
        enter(&app, &stranger, &members_only, "Anon").await.status(),
        401
    );
    // A guest name is required where guests are allowed.
    let open = instant(&app, &host, &[("allow_guests", "on")]).await;
    assert_eq!(enter(&app, &stranger, &open, "  ").await.status(), 422);
    // Waiting room off: guests go straight in.
    assert_eq!(
        entered(&app, &stranger, &open, "Quick guest").await,
        "Admitted"
    );

    // A meeting tomorrow cannot be entered yet, except by its host.
    let tomorrow = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 24 * 3_600_000)
        .to_string();
    let response = app
        .call(
            &host,
            "schedule_meeting",
            &[
                ("title", "Tomorrow"),
                ("starts_at_ms", &tomorrow),
                ("duration_minutes", "30"),
                ("allow_guests", "on"),
            ],
        )
        .await;
    let later: String = response.json().await.unwrap();
    let early = enter(&app, &app.client(), &later, "Early bird").await;
    assert_eq!(early.status(), 409);
    assert!(
        early.json::<Value>().await.unwrap()["NotOpen"]["opens_at_ms"]
            .as_i64()
            .is_some()
    );
    assert_eq!(entered(&app, &host, &later, "").await, "Admitted");

    // Wrong codes answer like missing meetings here too.
    let missing = enter(&app, &app.client(), "abcdefghijkmnpqrstuvwxyz23", "X").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.text().await.unwrap(), "\"NotFound\"");
}

/// TURN credentials go to admitted participants only, and check out against
/// the shared secret the way coturn's use-auth-secret checks them.
#[tokio::test]
async fn turn_credentials_only_for_admitted_participants() {
    use base64::Engine;
    use hmac::Mac;

    let secret = "coturn-shared-secret";
    let app = spawn_with(Spawn {
        extra_args: [
            "--stun-urls",
            "stun:127.0.0.1:3478",
            "--turn-urls",
            "turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp",
            "--turn-secret",
            secret,
            "--turn-credential-ttl-seconds",
            "600",
        ]
        .map(String::from)
        .to_vec(),
        ..Spawn::new(Backend::Sqlite)
    })
    .await;
    let host = user(&app, "turnhost").await;
    let code = instant(
        &app,
        &host,
        &[("waiting_room", "on"), ("allow_guests", "on")],
    )
    .await;
    let ice = |client: Client| {
        let request = client
            .post(app.url("/api/ice_servers"))
            .form(&[("code", code.clone())]);
        async move { request.send().await.unwrap() }
    };

    assert_eq!(
        ice(app.client()).await.status(),
        401,
        "strangers get nothing"
    );
    let guest = app.client();
    assert_eq!(entered(&app, &guest, &code, "Tess").await, "Waiting");
    assert_eq!(
        ice(guest.clone()).await.status(),
        403,
        "waiting is not admitted"
    );
    assert_eq!(enter(&app, &host, &code, "").await.status(), 200);
    let guest_id = knocks(&app, &host, &code).await[0]["participant_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        decide(&app, &host, &code, &guest_id, "admit")
            .await
            .status(),
        200
    );

    let response = ice(guest.clone()).await;
    assert_eq!(response.status(), 200);
    let config: Value = response.json().await.unwrap();
    let servers = config["ice_servers"].as_array().unwrap();
    assert_eq!(
        servers[0]["urls"],
        serde_json::json!(["stun:127.0.0.1:3478"])
    );
    assert!(servers[0]["username"].is_null());
    let turn = &servers[1];
    assert_eq!(turn["urls"].as_array().unwrap().len(), 2);
    let username = turn["username"].as_str().unwrap();
    let (expiry, who) = username.split_once(':').unwrap();
    assert_eq!(who, guest_id, "credentials name the participant");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expiry: i64 = expiry.parse().unwrap();
    assert!(
        (expiry - (now + 600)).abs() <= 5,
        "expires in the configured 600 s"
    );
    assert_eq!(config["expires_at_ms"].as_i64().unwrap(), expiry * 1000);
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn["credential"].as_str().unwrap(), expected);
    let mut wrong = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"another secret").unwrap();
    wrong.update(username.as_bytes());
    let forged = base64::engine::general_purpose::STANDARD.encode(wrong.finalize().into_bytes());
    assert_ne!(turn["credential"].as_str().unwrap(), forged);
}

/// Reads the door's event stream until an event whose data contains
/// `wanted`, returning how long that took (None: not within `limit`).
/// The self-test page's servers: for accounts (or someone admitted, with
/// a meeting code), with TURN credentials of five minutes at most, and a
/// limit on how often.
#[tokio::test]
async fn self_test_relay_credentials_are_short_and_limited() {
    let app = spawn_with(Spawn {
        extra_args: [
            "--turn-urls",
            "turn:127.0.0.1:3478?transport=udp",
            "--turn-secret",
            "coturn-shared-secret",
            "--turn-credential-ttl-seconds",
            "3600",
        ]
        .map(String::from)
        .to_vec(),
        ..Spawn::new(Backend::Sqlite)
    })
    .await;
    let servers = |client: Client| {
        let request = client.post(app.url("/api/self_test_servers"));
        async move { request.send().await.unwrap() }
    };
    // Nobody, and a guest without a meeting: nothing.
    assert_eq!(servers(app.client()).await.status(), 401);
    let guest = app.client();
    let made = app
        .call(&guest, "continue_as_guest", &[("display_name", "Tess")])
        .await;
    assert!(made.status().is_success() || made.status().is_redirection());
    assert_eq!(
        servers(guest).await.status(),
        401,
        "guests test from a lobby"
    );

    let ann = user(&app, "selftester").await;
    let response = servers(ann.clone()).await;
    assert_eq!(response.status(), 200);
    let config: Value = response.json().await.unwrap();
    let turn = &config["ice_servers"].as_array().unwrap()[0];
    assert_eq!(
        turn["urls"],
        serde_json::json!(["turn:127.0.0.1:3478?transport=udp"])
    );
    let (expiry, who) = turn["username"].as_str().unwrap().split_once(':').unwrap();
    assert!(who.starts_with("selftest-"), "{who}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expiry: i64 = expiry.parse().unwrap();
    assert!(
        (expiry - (now + 300)).abs() <= 5,
        "five minutes, not the hour calls get: {}",
        expiry - now
    );
    // 20 an hour from one address, then a clear 429.
    for _ in 1..20 {
        assert_eq!(servers(ann.clone()).await.status(), 200);
    }
    let refused = servers(ann.clone()).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["Limited"]["what"], "SelfTests");
}

async fn door_event(
    response: &mut reqwest::Response,
    wanted: &str,
    limit: std::time::Duration,
) -> Option<std::time::Duration> {
    let started = std::time::Instant::now();
    let mut seen = String::new();
    while started.elapsed() < limit {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if seen
                    .split("\n\n")
                    .any(|event| event.contains("event: door") && event.contains(wanted))
                {
                    return Some(started.elapsed());
                }
            }
            _ => return None,
        }
    }
    None
}

async fn open_door_events(app: &TestApp, client: &Client, code: &str) -> reqwest::Response {
    let response = client
        .get(app.url(&format!("/m/{code}/door/events")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_person_hears_the_decision_pushed_at_once() {
    let app = spawn_app(Backend::Sqlite).await;
    let host = user(&app, "chair").await;
    let code = instant(
        &app,
        &host,
        &[("waiting_room", "on"), ("allow_guests", "on")],
    )
    .await;
    let guest = app.client();
    assert_eq!(entered(&app, &guest, &code, "Kim").await, "Waiting");
    let mut events = open_door_events(&app, &guest, &code).await;
    // The state now, first.
    assert!(
        door_event(
            &mut events,
            "\"Waiting\"",
            std::time::Duration::from_secs(5)
        )
        .await
        .is_some(),
        "the stream starts with where the person stands"
    );
    let waiting = knocks(&app, &host, &code).await;
    let participant = waiting[0]["participant_id"].as_str().unwrap().to_string();
    let decided = decide(&app, &host, &code, &participant, "admit").await;
    assert_eq!(decided.status(), 200);
    let took = door_event(
        &mut events,
        "\"Admitted\"",
        std::time::Duration::from_secs(5),
    )
    .await
    .expect("the admission is pushed");
    assert!(
        took < std::time::Duration::from_secs(1),
        "pushed after {took:?}"
    );
    // A final answer ends the stream.
    assert!(matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), events.chunk()).await,
        Ok(Ok(None))
    ));

    // Someone who never knocked learns that once; the stream ends.
    let passerby = user(&app, "passerby").await;
    let mut once = open_door_events(&app, &passerby, &code).await;
    assert!(door_event(
        &mut once,
        "\"admission\":null",
        std::time::Duration::from_secs(5)
    )
    .await
    .is_some());
    assert!(matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), once.chunk()).await,
        Ok(Ok(None))
    ));

    // Nobody without an identity can watch a door.
    let stranger = app.client();
    let refused = stranger
        .get(app.url(&format!("/m/{code}/door/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decision_on_another_instance_is_pushed_within_a_second() {
    let redis = common::redis_server::RedisServer::start();
    let (one, two) = common::cluster(&redis, &[]).await;
    let (host_one, jar) = one.client_with_jar();
    let response = one
        .sign_up(&host_one, "chair", "correct horse battery")
        .await;
    assert_eq!(response.status(), 200);
    let code = instant(
        &one,
        &host_one,
        &[("waiting_room", "on"), ("allow_guests", "on")],
    )
    .await;
    // The host decides on the other instance (same session, shared store).
    let host_two = two.client_on(jar);
    let guest = one.client();
    assert_eq!(entered(&one, &guest, &code, "Kim").await, "Waiting");
    let mut events = open_door_events(&one, &guest, &code).await;
    door_event(
        &mut events,
        "\"Waiting\"",
        std::time::Duration::from_secs(5),
    )
    .await
    .expect("first state");
    let waiting = knocks(&two, &host_two, &code).await;
    let participant = waiting[0]["participant_id"].as_str().unwrap().to_string();
    assert_eq!(
        decide(&two, &host_two, &code, &participant, "deny")
            .await
            .status(),
        200
    );
    let took = door_event(&mut events, "\"Denied\"", std::time::Duration::from_secs(5))
        .await
        .expect("the refusal crosses instances");
    assert!(
        took < std::time::Duration::from_secs(1),
        "pushed after {took:?}"
    );
}

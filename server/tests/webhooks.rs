//! Webhooks: a receiver started here gets every event of a call, signed
//! (checked with this test's own HMAC, not moim's code), retried after a
//! 500; endpoints on private networks are refused unless the operator
//! allows them.

mod common;

use app::protocol::{ClientMessage, ServerMessage};
use common::people::{join_call, meeting_with_everyone, person};
use common::{spawn_app, spawn_with, Backend, Spawn};
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
struct Received {
    event: String,
    delivery: String,
    signature: String,
    body: String,
}

/// A webhook endpoint on loopback that records what arrives and answers
/// 500 to the first `fail_first` requests.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn receiver(fail_first: usize) -> Receiver {
    use axum::http::{HeaderMap, StatusCode};
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let mut log = log.lock().unwrap();
                log.push(Received {
                    event: header("moim-event"),
                    delivery: header("moim-delivery"),
                    signature: header("moim-signature"),
                    body,
                });
                if log.len() <= fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}/hook"),
        received,
    }
}

impl Receiver {
    fn events(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until every one of `events` arrived with a 2xx answer's
    /// attempt (a later one than any refused), up to 20 s.
    async fn wait_for(&self, events: &[&str]) -> Vec<Received> {
        for _ in 0..200 {
            let got = self.events();
            if events.iter().all(|e| got.iter().any(|r| r.event == *e)) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("not all of {events:?} arrived: {:#?}", self.events());
    }
}

/// The signature check a receiver would do, written here from the
/// documented rule: `t=<secs>,v1=hex(HMAC-SHA256(secret, "<t>.<body>"))`.
fn verify(secret: &str, header: &str, body: &str) -> Result<i64, String> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_string()),
            _ => {}
        }
    }
    let (t, v1) = t.zip(v1).ok_or("malformed signature header")?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if expected != v1 {
        return Err("signature mismatch".into());
    }
    Ok(t)
}

fn allow_private() -> Spawn {
    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = vec![
        "--webhooks-allow-private".into(),
        "--webhook-retry-seconds".into(),
        "1".into(),
        "--reconnect-grace-seconds".into(),
        "1".into(),
    ];
    spawn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_sends_signed_events_and_a_refused_delivery_is_retried() {
    let app = spawn_with(allow_private()).await;
    let hook = receiver(1).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let created = app
        .call(&ann.client, "create_webhook", &[("url", hook.url.as_str())])
        .await;
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.unwrap();
    let secret = created["secret"].as_str().expect("secret").to_string();

    let code = meeting_with_everyone(&app, &[ann.clone(), bob.clone()]).await;
    let (mut ann_ws, _, _) = join_call(&app, &ann, &code, None).await;
    let (mut bob_ws, _, _) = join_call(&app, &bob, &code, None).await;
    bob_ws.send(&ClientMessage::Leave).await;
    ann_ws
        .recv_until(|m| matches!(m, ServerMessage::PeerLeft { .. }))
        .await;
    ann_ws.send(&ClientMessage::EndMeeting).await;

    let mut got = hook
        .wait_for(&[
            "meeting.started",
            "participant.joined",
            "participant.left",
            "meeting.ended",
            "chat.transcript_ready",
        ])
        .await;
    // The first delivery was answered 500: it comes again (1 s later).
    for _ in 0..100 {
        if got[1..].iter().any(|r| r.delivery == got[0].delivery) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = hook.events();
    }
    // Everything is signed with the secret, recently, and names its event.
    let now_secs = domain::clock::now_ms() / 1000;
    for received in &got {
        let t = verify(&secret, &received.signature, &received.body)
            .unwrap_or_else(|e| panic!("{e}: {received:?}"));
        assert!((now_secs - t).abs() < 300, "stale timestamp {t}");
        let body: Value = serde_json::from_str(&received.body).unwrap();
        assert_eq!(body["event"], received.event.as_str());
        assert_eq!(body["id"], received.delivery.as_str());
        assert_eq!(body["data"]["meeting"]["code"], code.as_str());
    }
    // A tampered body fails the same check.
    assert!(verify(&secret, &got[0].signature, &got[0].body.replace('e', "E")).is_err());
    // Both joins; the one refused with 500 came again, same delivery id.
    let joined: Vec<&Received> = got
        .iter()
        .filter(|r| r.event == "participant.joined")
        .collect();
    let names: Vec<String> = joined
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            body["data"]["participant"]["display_name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        names.contains(&"ann".to_string()) && names.contains(&"bob".to_string()),
        "{names:?}"
    );
    let first = &got[0];
    assert!(
        got[1..].iter().any(|r| r.delivery == first.delivery),
        "the delivery answered 500 was sent again: {got:#?}"
    );
    let left: Value = serde_json::from_str(
        &got.iter()
            .find(|r| r.event == "participant.left")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(left["data"]["participant"]["display_name"], "bob");
    assert_eq!(left["data"]["reason"], "left");

    // The delivery log on the profile page.
    let mut log: Value = Value::Null;
    for _ in 0..50 {
        log = app
            .call(&ann.client, "list_webhooks", &[])
            .await
            .json()
            .await
            .unwrap();
        let all_delivered = log["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() >= 6 && d.iter().all(|d| d["state"] == "delivered"));
        if all_delivered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deliveries = log["deliveries"].as_array().expect("deliveries");
    assert!(
        deliveries.iter().all(|d| d["state"] == "delivered"),
        "{log}"
    );
    assert!(
        deliveries.iter().any(|d| d["attempts"] == 2),
        "one took two attempts: {log}"
    );
    // The attempts are counted for the operator, the refused one as failed.
    let scraped = app.scrape_metrics().await;
    let series = |name: &str| common::metric(&scraped, name);
    assert!(
        series(r#"moim_webhook_attempts_total{outcome="delivered"}"#) >= 6.0,
        "{scraped}"
    );
    assert_eq!(
        series(r#"moim_webhook_attempts_total{outcome="failed"}"#),
        1.0,
        "{scraped}"
    );
    assert_eq!(series("moim_webhooks_pending"), 0.0, "{scraped}");
    // Bob has no webhooks: nothing of his was sent anywhere.
    let bobs: Value = app
        .call(&bob.client, "list_webhooks", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bobs["deliveries"].as_array().map(Vec::len), Some(0));
}

/// The meeting's end mark (`end_announced_at`), read from the database.
async fn end_announced_at(app: &common::TestApp, code: &str) -> Option<i64> {
    let (announced,): (Option<i64>,) =
        sqlx::query_as("SELECT end_announced_at FROM meetings WHERE code = $1")
            .bind(code)
            .fetch_one(&app.state.db)
            .await
            .expect("the meeting's row");
    announced
}

fn count(got: &[Received], event: &str) -> usize {
    got.iter().filter(|r| r.event == event).count()
}

/// Longer than one round of the look-up for meetings whose time is over
/// (every 5 s on each instance).
const LAPSED_ROUND: Duration = Duration::from_secs(6);

/// A meeting nobody ends is announced ended once its scheduled time is
/// over and its call is empty: not while people talk on past its time,
/// once when they leave (with its transcript), never twice; a call that
/// starts again is announced again, by a host's end this time, and the
/// rule adds nothing to that.
async fn a_meeting_over_its_time_is_announced_ended_once_its_call_empties(backend: Backend) {
    let mut spawn = allow_private();
    spawn.backend = backend;
    let app = spawn_with(spawn).await;
    let hook = receiver(0).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let created: Value = app
        .call(&ann.client, "create_webhook", &[("url", hook.url.as_str())])
        .await
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().expect("secret").to_string();
    let code = meeting_with_everyone(&app, &[ann.clone(), bob.clone()]).await;
    let (mut ann_ws, _, _) = join_call(&app, &ann, &code, None).await;
    let (mut bob_ws, _, _) = join_call(&app, &bob, &code, None).await;
    hook.wait_for(&["meeting.started"]).await;

    // Its scheduled hour ended long ago; they talk on.
    sqlx::query("UPDATE meetings SET starts_at = $1 WHERE code = $2")
        .bind(domain::clock::now_ms() - 3 * 3_600_000)
        .bind(&code)
        .execute(&app.state.db)
        .await
        .unwrap();
    tokio::time::sleep(LAPSED_ROUND).await;
    assert_eq!(
        count(&hook.events(), "meeting.ended"),
        0,
        "{:#?}",
        hook.events()
    );

    // Both leave: the end is announced, signed, with its reason.
    bob_ws.send(&ClientMessage::Leave).await;
    ann_ws.send(&ClientMessage::Leave).await;
    let got = hook
        .wait_for(&["meeting.ended", "chat.transcript_ready"])
        .await;
    let ended = got.iter().find(|r| r.event == "meeting.ended").unwrap();
    verify(&secret, &ended.signature, &ended.body).unwrap();
    let body: Value = serde_json::from_str(&ended.body).unwrap();
    assert_eq!(body["data"]["reason"], "scheduled_end");
    assert_eq!(body["data"]["meeting"]["code"], code.as_str());
    assert!(end_announced_at(&app, &code).await.is_some());
    // Once only, however many rounds come after.
    tokio::time::sleep(LAPSED_ROUND).await;
    let got = hook.events();
    assert_eq!(count(&got, "meeting.ended"), 1, "{got:#?}");
    assert_eq!(count(&got, "chat.transcript_ready"), 1, "{got:#?}");

    // The host comes back: the call starts again and its end is to be
    // announced again; the host ends it, which announces itself.
    let (mut ann_ws, _, _) = join_call(&app, &ann, &code, None).await;
    for _ in 0..100 {
        if end_announced_at(&app, &code).await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(end_announced_at(&app, &code).await, None);
    ann_ws.send(&ClientMessage::EndMeeting).await;
    for _ in 0..200 {
        if count(&hook.events(), "meeting.ended") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(LAPSED_ROUND).await;
    let got = hook.events();
    let reasons: Vec<String> = got
        .iter()
        .filter(|r| r.event == "meeting.ended")
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            body["data"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(reasons, ["scheduled_end", "ended"], "{got:#?}");
    assert_eq!(count(&got, "meeting.started"), 2, "{got:#?}");
}

on_both_databases!(a_meeting_over_its_time_is_announced_ended_once_its_call_empties);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_plain_http_endpoints_are_refused_by_default() {
    let app = spawn_app(Backend::Sqlite).await;
    let ann = person(&app, "ann").await;
    for (url, problem) in [
        ("http://hooks.example.org/x", "UrlInvalid"),
        ("https://127.0.0.1/x", "UrlPrivate"),
        ("https://10.1.2.3/x", "UrlPrivate"),
        ("https://169.254.169.254/latest/meta-data", "UrlPrivate"),
        ("https://[::1]/x", "UrlPrivate"),
        ("https://localhost/x", "UrlPrivate"),
        ("https://user:pw@hooks.example.org/x", "UrlInvalid"),
        ("not a url", "UrlInvalid"),
    ] {
        let response = app
            .call(&ann.client, "create_webhook", &[("url", url)])
            .await;
        assert_eq!(response.status(), 422, "{url}");
        let body = response.text().await.unwrap();
        assert!(body.contains(problem), "{url}: {body}");
    }
    // A public name is taken (and checked again at each delivery).
    let ok = app
        .call(
            &ann.client,
            "create_webhook",
            &[("url", "https://hooks.example.org/moim")],
        )
        .await;
    assert_eq!(ok.status(), 200);
    // Someone else cannot remove it.
    let bob = person(&app, "bob").await;
    let listed: Value = app
        .call(&ann.client, "list_webhooks", &[])
        .await
        .json()
        .await
        .unwrap();
    let id = listed["hooks"][0]["id"].as_str().unwrap().to_string();
    let stolen = app
        .call(&bob.client, "remove_webhook", &[("id", id.as_str())])
        .await;
    assert_eq!(stolen.status(), 404);
    let removed = app
        .call(&ann.client, "remove_webhook", &[("id", id.as_str())])
        .await;
    assert_eq!(removed.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_to_a_private_address_is_never_sent() {
    // An endpoint on loopback that got past the form (a name that resolved
    // publicly when added, say): stored directly, as if it had.
    let app = spawn_app(Backend::Sqlite).await;
    let hook = receiver(0).await;
    let ann = person(&app, "ann").await;
    let viewer = app.viewer(&ann.client).await;
    let ann_id = viewer["User"]["id"].as_str().expect("user id").to_string();
    let private = hook.url.replacen("http://", "https://", 1);
    domain::webhooks::create(&app.state.db, &ann_id, &private, domain::clock::now_ms())
        .await
        .expect("stored");
    let code = meeting_with_everyone(&app, std::slice::from_ref(&ann)).await;
    let (_ws, _, _) = join_call(&app, &ann, &code, None).await;
    // The worker tries (first attempt at once), refuses, records why.
    let mut log = Value::Null;
    for _ in 0..50 {
        log = app
            .call(&ann.client, "list_webhooks", &[])
            .await
            .json()
            .await
            .unwrap();
        let tried = log["deliveries"]
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(|d| d["attempts"].as_i64() >= Some(1)));
        if tried {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deliveries = log["deliveries"].as_array().expect("deliveries");
    assert!(!deliveries.is_empty(), "{log}");
    for delivery in deliveries {
        assert_eq!(delivery["state"], "pending", "{log}");
        assert_eq!(
            delivery["last_error"], "the endpoint's address cannot be used",
            "{log}"
        );
    }
    assert!(
        hook.events().is_empty(),
        "nothing reached the private address"
    );
}

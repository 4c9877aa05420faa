//! `/metrics`: on its own listener only, and the counters move with what
//! people do (sign-ins, a call, a chat message).

mod common;

use app::protocol::ServerMessage;
use common::chatter::chat;
use common::people::{join_call, meeting_with_everyone, person};
use common::redis_server::RedisServer;
use common::{spawn_app, Backend, TestApp};
use std::time::Duration;

async fn scrape(app: &TestApp) -> String {
    app.scrape_metrics().await
}

fn value(text: &str, series: &str) -> f64 {
    common::metric(text, series)
}

/// The sum of every series of `name` whose labels contain each of `labels`.
fn sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_sign_ins_a_call_and_a_chat_message() {
    let app = spawn_app(Backend::Sqlite).await;
    let before = scrape(&app).await;
    assert_eq!(value(&before, "moim_chat_messages_stored_total"), 0.0);
    assert_eq!(value(&before, "moim_websockets_open"), 0.0);
    assert!(before.contains("moim_build_info{version=\""), "{before}");

    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    // One wrong password, one right one.
    let stranger = app.client();
    assert_ne!(
        app.sign_in(&stranger, "ann", "wrong password")
            .await
            .status(),
        200
    );
    assert_eq!(
        app.sign_in(&stranger, "ann", "correct horse battery")
            .await
            .status(),
        200
    );
    let code = meeting_with_everyone(&app, &[ann.clone(), bob.clone()]).await;
    let (mut ann_ws, _, _) = join_call(&app, &ann, &code, None).await;
    let (mut bob_ws, _, _) = join_call(&app, &bob, &code, None).await;
    ann_ws.send(&chat("k1", "hello metrics")).await;
    ann_ws
        .recv_until(|m| matches!(m, ServerMessage::ChatAck { .. }))
        .await;
    bob_ws
        .recv_until(|m| matches!(m, ServerMessage::Chat { .. }))
        .await;

    let during = scrape(&app).await;
    assert_eq!(value(&during, "moim_chat_messages_stored_total"), 1.0);
    assert_eq!(value(&during, "moim_websockets_open"), 2.0);
    assert_eq!(
        value(&during, r#"moim_call_participants{media_path="direct"}"#),
        2.0
    );
    assert_eq!(value(&during, r#"moim_calls{media_path="direct"}"#), 1.0);
    assert_eq!(
        value(&during, r#"moim_sign_ins_total{outcome="success"}"#),
        1.0
    );
    assert_eq!(
        value(&during, r#"moim_sign_ins_total{outcome="failure"}"#),
        1.0
    );
    assert_eq!(
        value(
            &during,
            r#"moim_signaling_messages_total{direction="in",type="join"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &during,
            r#"moim_signaling_messages_total{direction="in",type="chat_send"}"#
        ),
        1.0
    );
    assert!(
        value(
            &during,
            r#"moim_signaling_messages_total{direction="out",type="welcome"}"#
        ) >= 2.0
    );
    // Server functions are counted by their route pattern, never the path
    // with a meeting code in it.
    assert!(
        sum(
            &during,
            "moim_http_requests_total",
            &[r#"method="POST""#, r#"status="200""#]
        ) >= 4.0,
        "{during}"
    );
    assert!(
        !during.contains(&code),
        "a meeting code in a label:\n{during}"
    );
    assert!(
        sum(
            &during,
            "moim_db_query_duration_seconds_count",
            &[r#"operation="session_load""#]
        ) >= 1.0
    );
    assert!(
        sum(
            &during,
            "moim_db_query_duration_seconds_count",
            &[r#"operation="chat_store""#]
        ) >= 1.0
    );
    let pool = value(&during, r#"moim_db_pool_connections{state="idle"}"#)
        + value(&during, r#"moim_db_pool_connections{state="in_use"}"#);
    assert!(pool >= 1.0, "the pool holds connections: {pool}");

    // Leaving takes them out again.
    ann_ws.close().await;
    bob_ws.close().await;
    let mut after = scrape(&app).await;
    for _ in 0..50 {
        if value(&after, "moim_websockets_open") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = scrape(&app).await;
    }
    assert_eq!(value(&after, "moim_websockets_open"), 0.0, "{after}");
    assert_eq!(
        value(&after, r#"moim_call_participants{media_path="direct"}"#),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_listener_does_not_serve_metrics_and_limits_are_counted() {
    let app = spawn_app(Backend::Sqlite).await;
    let status = app.status_of("/metrics").await;
    assert_eq!(status, 404, "/metrics must not be public");
    assert_ne!(app.addr.port(), app.metrics_addr.port());
    assert!(app.metrics_addr.ip().is_loopback());

    // Guessing meeting codes runs into the look-up limit (30 misses).
    let mut limited = false;
    for attempt in 0..40 {
        let status = app
            .status_of(&format!("/m/nosuchcode{attempt}/invite.ics"))
            .await;
        limited |= status == 429;
    }
    assert!(limited, "the look-up limit must refuse some guesses");
    let text = scrape(&app).await;
    assert!(
        value(&text, r#"moim_rate_limited_total{limit="lookup"}"#) >= 1.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_state_is_reported_with_redis() {
    let redis = RedisServer::start();
    let (one, _two) = common::cluster(&redis, &[]).await;
    // Up once its subscriber has connected (as /readyz says).
    let mut text = scrape(&one).await;
    for _ in 0..50 {
        if value(&text, "moim_redis_up") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape(&one).await;
    }
    assert_eq!(value(&text, "moim_redis_up"), 1.0, "{text}");
    assert_eq!(value(&text, "moim_redis_publish_failures_total"), 0.0);
    // Without Redis there is no Redis to report on (nor to alert about).
    let single = spawn_app(Backend::Sqlite).await;
    let text = scrape(&single).await;
    assert!(!text.contains("moim_redis"), "{text}");
}

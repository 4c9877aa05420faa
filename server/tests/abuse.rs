//! Abuse limits end to end: sign-in guessing that slows attackers without
//! locking the owner out, IPv6 clients counted by /64, limits on sign-ups,
//! guests and knocks, the paged waiting list, sign-in's own hashing
//! permits, and limits shared by instances through Redis.

mod common;

use common::redis_server::RedisServer;
use common::{spawn_with, Backend, Spawn, TestApp};
use domain::throttle::{LocalRateStore, RateStore, Rule};
use reqwest::Client;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

/// An instance behind a "proxy" at 127.0.0.1, so tests choose the client
/// address with `X-Forwarded-For`.
async fn behind_proxy(extra_args: Vec<String>) -> TestApp {
    spawn_with(Spawn {
        trusted_proxies: Some("127.0.0.1".to_string()),
        extra_args,
        ..Spawn::new(Backend::Sqlite)
    })
    .await
}

/// Calls a server function as if from `address`.
async fn call_from(
    app: &TestApp,
    client: &Client,
    address: &str,
    function: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(app.url(&format!("/api/{function}")))
        .header("x-forwarded-for", address)
        .form(fields)
        .send()
        .await
        .expect("request")
}

async fn sign_in_from(app: &TestApp, client: &Client, address: &str, user: &str, pw: &str) -> u16 {
    call_from(
        app,
        client,
        address,
        "sign_in",
        &[("username", user), ("password", pw)],
    )
    .await
    .status()
    .as_u16()
}

async fn sign_up_from(
    app: &TestApp,
    client: &Client,
    address: &str,
    user: &str,
    pw: &str,
) -> reqwest::Response {
    call_from(
        app,
        client,
        address,
        "sign_up",
        &[
            ("username", user),
            ("display_name", user),
            ("email", ""),
            ("password", pw),
        ],
    )
    .await
}

async fn limited(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert!(body["Limited"]["retry_after_secs"].as_u64().unwrap() > 0);
    body["Limited"]["what"].as_str().unwrap().to_string()
}

/// The owner signs in from their own address, with no failure there, while
/// guesses come from many other addresses: guessers are slowed and refused,
/// the owner is not (before, five failures locked the account for
/// everyone for 15 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_signs_in_while_others_guess() {
    let app = behind_proxy(vec![]).await;
    let owner_address = "203.0.113.50";
    let owner = app.client();
    let response = sign_up_from(&app, &owner, owner_address, "victim", PASSWORD).await;
    assert_eq!(response.status(), 200);
    app.call(&owner, "sign_out", &[]).await;

    // 12 addresses, 6 guesses each: every address gets its first guess,
    // then they share the account's slow rate (10 a minute) and each
    // address stops at 5 failures.
    let attacker = app.client();
    let mut verified = 0;
    for n in 1..=12 {
        let address = format!("198.51.100.{n}");
        for _ in 0..6 {
            match sign_in_from(&app, &attacker, &address, "victim", "guess-guess").await {
                401 => verified += 1,
                429 => {}
                other => panic!("unexpected status {other}"),
            }
        }
    }
    // 12 first guesses + 10 at the slow rate (+ what refills during the
    // test, one per 6 s) of 72.
    assert!(
        verified <= 12 + 10 + 3,
        "guessers were slowed ({verified} of 72 checked)"
    );
    assert!(
        verified >= 12 + 10,
        "each address had its first guess ({verified})"
    );

    assert_eq!(
        sign_in_from(&app, &owner, owner_address, "victim", PASSWORD).await,
        200,
        "the owner is not locked out"
    );
    assert_eq!(app.viewer(&owner).await["User"]["username"], "victim");
}

/// Two addresses in one IPv6 /64 share one budget; the next /64 has its
/// own. Both the per-address limit (30 failures across accounts) and the
/// per-account-and-address limit (5) count by /64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_share_a_budget_per_64() {
    let app = behind_proxy(vec![]).await;
    let client = app.client();
    for n in 1..=5 {
        let address = format!("2001:db8:5:5::{n:x}");
        assert_eq!(
            sign_in_from(&app, &client, &address, "someone", "wrong-password").await,
            401
        );
    }
    assert_eq!(
        sign_in_from(
            &app,
            &client,
            "2001:db8:5:5:ffff::1",
            "someone",
            "wrong-password"
        )
        .await,
        429,
        "same /64, same account: refused"
    );
    assert_eq!(
        sign_in_from(
            &app,
            &client,
            "2001:db8:5:6::1",
            "someone",
            "wrong-password"
        )
        .await,
        401,
        "the next /64 is someone else"
    );

    for n in 0..30 {
        let address = format!("2001:db8:7:7:{n:x}::1");
        let user = format!("nobody{n}");
        assert_eq!(
            sign_in_from(&app, &client, &address, &user, "wrong-password").await,
            401
        );
    }
    assert_eq!(
        sign_in_from(
            &app,
            &client,
            "2001:db8:7:7:abcd::9",
            "another",
            "wrong-password"
        )
        .await,
        429,
        "30 failures from one /64 refuse the whole /64"
    );
    assert_eq!(
        sign_in_from(
            &app,
            &client,
            "2001:db8:7:8::1",
            "another",
            "wrong-password"
        )
        .await,
        401
    );
}

/// Sign-ups are counted per address (every try: each costs a hash or
/// probes names), with a message of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_are_limited_per_address() {
    let app = behind_proxy(vec![]).await;
    let client = app.client();
    for n in 0..20 {
        // Refused as invalid (password too short): no hash, still counted.
        let response = sign_up_from(&app, &client, "203.0.113.20", &format!("u{n}"), "x").await;
        assert_eq!(response.status(), 422);
    }
    let response = sign_up_from(&app, &client, "203.0.113.20", "late", PASSWORD).await;
    assert_eq!(limited(response).await, "SignUps");
    assert_eq!(app.count("users").await, 0);
    let response = sign_up_from(&app, &client, "203.0.113.21", "other", PASSWORD).await;
    assert_eq!(response.status(), 200, "another address signs up");
}

/// Sign-ups cannot take the hashing permits sign-ins need: with every
/// sign-up permit held (a flood in progress), a sign-in still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_keep_their_own_hashing_permits() {
    let app = behind_proxy(vec![]).await;
    let owner = app.client();
    let response = sign_up_from(&app, &owner, "203.0.113.30", "regular", PASSWORD).await;
    assert_eq!(response.status(), 200);
    app.call(&owner, "sign_out", &[]).await;

    let permits = app.state.sign_up_permits.clone();
    let all = permits.available_permits() as u32;
    let _held = permits.acquire_many_owned(all).await.unwrap();
    // A sign-up now waits for a permit...
    let flood = {
        let client = app.client();
        let url = app.url("/api/sign_up");
        tokio::spawn(async move {
            client
                .post(url)
                .header("x-forwarded-for", "198.51.100.30")
                .form(&[
                    ("username", "flooder"),
                    ("display_name", "flooder"),
                    ("email", ""),
                    ("password", PASSWORD),
                ])
                .send()
                .await
        })
    };
    // ...while a sign-in goes through.
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        sign_in_from(&app, &owner, "203.0.113.30", "regular", PASSWORD),
    )
    .await
    .expect("sign-in is not starved by sign-ups");
    assert_eq!(status, 200);
    assert!(!flood.is_finished(), "the sign-up was waiting for a permit");
    flood.abort();
}

/// Each new guest is a session row: counted per address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_are_limited_per_address() {
    let app = behind_proxy(vec![]).await;
    for n in 0..50 {
        let response = call_from(
            &app,
            &app.client(),
            "203.0.113.40",
            "continue_as_guest",
            &[("display_name", &format!("Guest {n}"))],
        )
        .await;
        assert_eq!(response.status(), 200, "guest {n}");
    }
    let guest = app.client();
    let response = call_from(
        &app,
        &guest,
        "203.0.113.40",
        "continue_as_guest",
        &[("display_name", "One too many")],
    )
    .await;
    assert_eq!(limited(response).await, "Guests");
    assert_eq!(app.viewer(&guest).await, Value::Null);
    let response = call_from(
        &app,
        &app.client(),
        "203.0.113.41",
        "continue_as_guest",
        &[("display_name", "Elsewhere")],
    )
    .await;
    assert_eq!(response.status(), 200);
}

async fn knock(app: &TestApp, address: &str, code: &str, name: &str) -> reqwest::Response {
    call_from(
        app,
        &app.client(),
        address,
        "enter_meeting",
        &[("code", code), ("display_name", name)],
    )
    .await
}

/// Knocks are bounded per address and meeting, and per meeting overall;
/// the host gets the oldest 50 with the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knocks_are_bounded_and_the_list_is_paged() {
    let app = behind_proxy(vec![]).await;
    let host = app.client();
    let response = sign_up_from(&app, &host, "203.0.113.60", "chair", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let response = app
        .call(
            &host,
            "schedule_meeting",
            &[
                ("title", "Open day"),
                ("instant", "1"),
                ("waiting_room", "on"),
                ("allow_guests", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let code: String = response.json().await.unwrap();

    // One address: 30 knocks, then refused.
    for n in 0..30 {
        let response = knock(&app, "198.51.100.60", &code, &format!("Visitor {n}")).await;
        assert_eq!(response.status(), 200, "knock {n}");
        assert_eq!(response.json::<Value>().await.unwrap(), "Waiting");
    }
    let response = knock(&app, "198.51.100.60", &code, "Visitor 30").await;
    assert_eq!(limited(response).await, "Knocks");

    // Up to 100 waiting in all.
    for n in 30..100 {
        let address = format!("10.9.{}.{}", n / 200, n % 200);
        let response = knock(&app, &address, &code, &format!("Visitor {n}")).await;
        assert_eq!(response.status(), 200, "knock {n}");
    }
    let response = knock(&app, "10.9.9.9", &code, "Visitor 100").await;
    assert_eq!(limited(response).await, "WaitingRoomFull");

    let response = app.call(&host, "list_knocks", &[("code", &code)]).await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["total"], 100);
    let knocks = page["knocks"].as_array().unwrap();
    assert_eq!(knocks.len(), 50);
    assert_eq!(knocks[0]["display_name"], "Visitor 0", "oldest first");
    assert_eq!(
        app.count("meeting_admissions").await,
        100,
        "refused knocks are not stored"
    );
}

// ------------------------------------------------- the RateStore contract

/// Runs one contract test against the in-process store and the Redis one.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn local() {
                    let store: std::sync::Arc<dyn domain::throttle::RateStore> =
                        std::sync::Arc::new(super::LocalRateStore::default());
                    super::$name(store).await
                }
                #[tokio::test]
                async fn redis() {
                    let server = super::RedisServer::start();
                    let store = domain::throttle::redis::RedisRateStore::connect(&server.url())
                        .await
                        .expect("redis");
                    super::$name(std::sync::Arc::new(store)).await
                }
            }
        )*
    };
}

on_both_stores!(
    store_lets_a_burst_through_then_paces,
    store_keys_are_independent_and_clearable,
    store_peeks_without_counting,
);

const T0: i64 = 1_700_000_000_000;

async fn store_lets_a_burst_through_then_paces(store: Arc<dyn RateStore>) {
    let rule = Rule::per(3, Duration::from_secs(30)); // one per 10 s
    for used in 0..3 {
        let d = store.hit("burst", rule, T0, true).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.used, used);
    }
    let refused = store.hit("burst", rule, T0 + 1_000, true).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Duration::from_secs(9));
    // Refusals are not counted: 10 s after the start, one more fits.
    for _ in 0..5 {
        assert!(
            !store
                .hit("burst", rule, T0 + 2_000, true)
                .await
                .unwrap()
                .allowed
        );
    }
    assert!(
        store
            .hit("burst", rule, T0 + 10_000, true)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !store
            .hit("burst", rule, T0 + 10_000, true)
            .await
            .unwrap()
            .allowed
    );
    // Long after, a clean slate.
    let later = store.hit("burst", rule, T0 + 600_000, true).await.unwrap();
    assert!(later.allowed);
    assert_eq!(later.used, 0);
}

async fn store_keys_are_independent_and_clearable(store: Arc<dyn RateStore>) {
    let rule = Rule::per(1, Duration::from_secs(60));
    assert!(store.hit("a", rule, T0, true).await.unwrap().allowed);
    assert!(!store.hit("a", rule, T0, true).await.unwrap().allowed);
    assert!(store.hit("b", rule, T0, true).await.unwrap().allowed);
    store.clear("a").await.unwrap();
    assert!(store.hit("a", rule, T0, true).await.unwrap().allowed);
    assert!(!store.hit("b", rule, T0, true).await.unwrap().allowed);
}

async fn store_peeks_without_counting(store: Arc<dyn RateStore>) {
    let rule = Rule::per(2, Duration::from_secs(60));
    for _ in 0..5 {
        let d = store.hit("peek", rule, T0, false).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.used, 0);
    }
    assert!(store.hit("peek", rule, T0, true).await.unwrap().allowed);
    assert_eq!(store.hit("peek", rule, T0, false).await.unwrap().used, 1);
}

// ------------------------------------------------- several instances

/// Two instances on one Redis share one budget: after 30 unknown meeting
/// codes from one address, split between them, the next look-up is refused
/// on both (before, each instance counted 30 of its own). Sign-in failures
/// likewise; chat, sign-up, guest and knock limits use the same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_sharing_redis_share_the_budget() {
    let redis = RedisServer::start();
    let one = behind_proxy(vec!["--redis-url".into(), redis.url()]).await;
    let two = behind_proxy(vec!["--redis-url".into(), redis.url()]).await;
    async fn miss(app: &TestApp, n: usize) -> u16 {
        app.client()
            .get(app.url(&format!("/m/nosuchcode{n}/invite.ics")))
            .header("x-forwarded-for", "198.51.100.77")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
    for n in 0..30 {
        let app = if n % 2 == 0 { &one } else { &two };
        assert_eq!(miss(app, n).await, 404, "miss {n}");
    }
    assert_eq!(miss(&one, 99).await, 429);
    assert_eq!(miss(&two, 99).await, 429);

    // Sign-in failures too: 5 for one account and address, split.
    for n in 0..5 {
        let app = if n % 2 == 0 { &one } else { &two };
        assert_eq!(
            sign_in_from(
                app,
                &app.client(),
                "198.51.100.78",
                "shared",
                "wrong-password"
            )
            .await,
            401
        );
    }
    assert_eq!(
        sign_in_from(
            &two,
            &two.client(),
            "198.51.100.78",
            "shared",
            "wrong-password"
        )
        .await,
        429
    );
}

/// Redis down: limits are counted on each instance instead (neither every
/// request refused nor every limit gone), and answers stay normal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_fall_back_to_this_instance_when_redis_is_down() {
    let mut redis = RedisServer::start();
    let app = behind_proxy(vec!["--redis-url".into(), redis.url()]).await;
    let lookup = |n: usize| {
        let request = app
            .client()
            .get(app.url(&format!("/m/nosuchcode{n}/invite.ics")))
            .header("x-forwarded-for", "198.51.100.90");
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(lookup(0).await, 404);
    redis.stop();
    let started = std::time::Instant::now();
    // The first miss was counted in Redis; this instance now counts 30 of
    // its own.
    for n in 1..=30 {
        assert_eq!(lookup(n).await, 404, "miss {n} with Redis down");
    }
    assert_eq!(lookup(99).await, 429, "still limited, locally");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a Redis outage does not stall requests ({:?})",
        started.elapsed()
    );
}

//! The Redis sides of the boundaries, each run through the same contract
//! suite as its in-process side (those run in the domain crate's own
//! tests). A distributed side that passes is a drop-in for the local one.
//!
//! - room placement (`domain::placement`): which instance hosts a room's
//!   media, a lease with expiry and epoch;
//! - automatic rooms' media paths (`domain::media::paths`): direct or
//!   through the media server, one state per room for every instance;
//! - presence (`domain::rooms::Presence`): who is in which call;
//! - room bus (`domain::rooms::bus::RoomBus`): events to every connection of a
//!   room, on every instance;
//! - media across instances (`domain::media::routing`): a room's media on
//!   the instance that holds it, the others relaying;
//! - chat storage (`domain::chat`): on SQLite and on PostgreSQL.

mod common;

use common::people::{instant_meeting, person};
use common::redis_server::RedisServer;
use common::{spawn_app, Backend};
use domain::placement::contract::placement_contract;
use domain::placement::redis::RedisPlacement;
use domain::placement::RoomPlacement;
use domain::rooms::bus::RoomBus;
use domain::rooms::contract::{announce_contract, bus_contract, presence_contract};
use std::time::Duration;

// ---- room placement ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_through_redis() {
    let redis = RedisServer::start();
    let one = RedisPlacement::connect(&redis.url()).await.expect("redis");
    placement_contract(&one, "redis").await;
    // Two instances' connections see one placement.
    let two = RedisPlacement::connect(&redis.url()).await.expect("redis");
    let room = domain::ids::RoomId::from("shared");
    let a = domain::ids::InstanceId::from("a");
    let b = domain::ids::InstanceId::from("b");
    let now = 1_800_000_000_000;
    let lease = match one.claim(&room, &a, 5_000, now).await.expect("claim") {
        domain::placement::Claim::Granted(lease) => lease,
        held => panic!("{held:?}"),
    };
    assert_eq!(
        two.claim(&room, &b, 5_000, now + 1).await.expect("claim"),
        domain::placement::Claim::HeldBy(lease.clone())
    );
    assert_eq!(
        two.holder(&room, now + 1).await.expect("holder"),
        Some(lease)
    );
}

// ---- automatic rooms' media paths ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_paths_through_redis() {
    use domain::media::paths::redis::RedisPathStore;
    use domain::media::paths::PathStore;
    let redis = RedisServer::start();
    // Two instances' own connections: one state per room between them.
    let store = || async {
        std::sync::Arc::new(RedisPathStore::connect(&redis.url()).await.expect("redis"))
            as std::sync::Arc<dyn PathStore>
    };
    domain::media::paths::contract::paths_contract([store().await, store().await], "redis").await;
    // A kept room expires unless observed (calls that vanish with their
    // instances leave nothing behind for good), and observing renews it.
    let one = store().await;
    let policy = domain::media::paths::PathPolicy::default();
    one.observe("kept", 5, 1_800_000_000_000, &policy)
        .await
        .expect("observe");
    let mut redis_conn = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = "moim:media-path:kept";
    let ttl_conn = redis_conn.clone();
    let ttl = || async {
        redis::cmd("PTTL")
            .arg(key)
            .query_async::<i64>(&mut ttl_conn.clone())
            .await
            .expect("pttl")
    };
    let first = ttl().await;
    assert!(first > 3_000_000 && first <= 3_600_000, "{first}");
    redis::cmd("PEXPIRE")
        .arg(key)
        .arg(60_000)
        .query_async::<()>(&mut redis_conn)
        .await
        .expect("pexpire");
    let seen = one
        .observe("kept", 5, 1_800_000_001_000, &policy)
        .await
        .expect("observe");
    assert_eq!(seen.path, app::protocol::MediaPath::Server);
    assert!(ttl().await > 3_000_000, "an observation renews the room");
}

// ---- media across instances (its in-process side runs in the domain
// crate's own tests) ----

/// One instance's own links to Redis: its bus and its placement.
async fn instance_links(
    redis: &RedisServer,
) -> (
    std::sync::Arc<dyn RoomBus>,
    std::sync::Arc<dyn RoomPlacement>,
) {
    let (bus, _) = domain::rooms::redis::connect(&redis.url())
        .await
        .expect("redis");
    let placement = RedisPlacement::connect(&redis.url()).await.expect("redis");
    (bus, std::sync::Arc::new(placement))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_routing_through_redis() {
    use domain::media::routing::contract::{
        dropped_member_contract, relay_contract, takeover_contract,
    };
    let redis = RedisServer::start();
    relay_contract([instance_links(&redis).await, instance_links(&redis).await]).await;
    takeover_contract([instance_links(&redis).await, instance_links(&redis).await]).await;
    dropped_member_contract([instance_links(&redis).await, instance_links(&redis).await]).await;
}

// ---- presence and the room bus (their in-process sides run in the
// domain crate's own tests) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_through_redis() {
    let redis = RedisServer::start();
    let (_bus, presence) = domain::rooms::redis::connect(&redis.url())
        .await
        .expect("redis");
    presence_contract(presence.as_ref()).await;
}

type RedisRooms = (
    std::sync::Arc<domain::rooms::redis::RedisBus>,
    std::sync::Arc<domain::rooms::redis::RedisPresence>,
);

/// Two instances' rooms on one Redis, ready once each subscriber
/// connection is up.
async fn two_instances(redis: &RedisServer) -> (RedisRooms, RedisRooms) {
    let one = domain::rooms::redis::connect(&redis.url())
        .await
        .expect("redis");
    let two = domain::rooms::redis::connect(&redis.url())
        .await
        .expect("redis");
    for _ in 0..100 {
        if one.0.is_healthy() && two.0.is_healthy() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (one, two)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_through_redis() {
    let redis = RedisServer::start();
    let ((one, _), (two, _)) = two_instances(&redis).await;
    bus_contract(one.as_ref(), two.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_and_announcement_through_redis() {
    let redis = RedisServer::start();
    let ((bus_one, presence_one), (bus_two, presence_two)) = two_instances(&redis).await;
    announce_contract(
        (bus_one.as_ref(), presence_one.as_ref()),
        (bus_two.as_ref(), presence_two.as_ref()),
    )
    .await;
}

// ---- chat storage, on both databases ----

on_both_databases!(chat_store);

async fn chat_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = person(&app, "ann").await;
    let code = instant_meeting(&app, &ann, "", &[]).await;
    let (meeting_id,): (String,) = sqlx::query_as("SELECT id FROM meetings WHERE code = $1")
        .bind(&code)
        .fetch_one(&app.state.db)
        .await
        .expect("the meeting");
    domain::chat::contract::chat_store_contract(&app.state.db, &meeting_id).await;
}

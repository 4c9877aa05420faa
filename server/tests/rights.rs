//! Rights that change while a meeting runs: the re-check a running call
//! makes (`current_access`), what settings and co-host changes take back
//! and announce, cancellation, re-entries racing a host's decision, and
//! who gets TURN credentials when.

mod common;

use app::lobby::ssr::{current_access, Access, MeetingPhase};
use app::lobby::Admission;
use app::meetings::Role;
use app::protocol::{close, PeerRole, ServerMessage};
use common::people::{enter, instant_meeting, join_call, person, person_with_email, Person};
use common::{spawn_app, spawn_with, Backend, Spawn, TestApp};
use domain::door::admissions::{self, Entrant};
use domain::rooms::bus::{RoomEvent, SharedEvent};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

fn guest(app: &TestApp) -> Person {
    let (client, jar) = app.client_with_jar();
    Person {
        client,
        jar,
        name: "guest".into(),
    }
}

async fn user_id(app: &TestApp, username: &str) -> String {
    let (id,): (String,) = sqlx::query_as("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&app.state.db)
        .await
        .expect("user id");
    id
}

async fn meeting_id(app: &TestApp, code: &str) -> String {
    let (id,): (String,) = sqlx::query_as("SELECT id FROM meetings WHERE code = $1")
        .bind(code)
        .fetch_one(&app.state.db)
        .await
        .expect("meeting id");
    id
}

/// The participant id of whoever entered under `name` (guests).
async fn entered_as(app: &TestApp, meeting: &str, name: &str) -> String {
    let (id,): (String,) = sqlx::query_as(
        "SELECT participant_id FROM meeting_admissions WHERE meeting_id = $1 AND display_name = $2",
    )
    .bind(meeting)
    .bind(name)
    .fetch_one(&app.state.db)
    .await
    .expect("admission row");
    id
}

/// Writes an entry as the door does (`admissions::record_entry`).
async fn record_entry(
    db: &sqlx::AnyPool,
    meeting_id: &str,
    participant_id: &str,
    display_name: &str,
    is_guest: bool,
    wanted: Admission,
) -> sqlx::Result<Admission> {
    let entrant = Entrant {
        meeting_id,
        participant_id,
        display_name,
        is_guest,
    };
    admissions::record_entry(db, entrant, wanted, domain::clock::now_ms()).await
}

async fn access(app: &TestApp, meeting: &str, participant: &str, is_guest: bool) -> Access {
    current_access(&app.state.db, meeting, participant, is_guest)
        .await
        .expect("current_access")
}

async fn door(app: &TestApp, who: &Person, code: &str) -> Value {
    let response = app.call(&who.client, "door_state", &[("code", code)]).await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.expect("json")["admission"].clone()
}

async fn decide(app: &TestApp, host: &Person, code: &str, participant: &str, decision: &str) {
    let response = app
        .call(
            &host.client,
            "decide_knock",
            &[
                ("code", code),
                ("participant_id", participant),
                ("decision", decision),
            ],
        )
        .await;
    assert_eq!(response.status(), 200, "decide_knock {decision}");
}

async fn set_cohosts(app: &TestApp, host: &Person, code: &str, cohosts: &str) {
    let response = app
        .call(
            &host.client,
            "set_cohosts",
            &[("code", code), ("cohosts", cohosts)],
        )
        .await;
    assert_eq!(response.status(), 200, "set_cohosts");
}

/// Saves the meeting's settings, keeping its start; `extra` are the
/// checkboxes that stay on (absent: off).
async fn update(app: &TestApp, host: &Person, code: &str, invitees: &str, extra: &[&str]) {
    let (starts_at,): (i64,) = sqlx::query_as("SELECT starts_at FROM meetings WHERE code = $1")
        .bind(code)
        .fetch_one(&app.state.db)
        .await
        .expect("starts_at");
    let starts_at = starts_at.to_string();
    let mut fields = vec![
        ("code", code),
        ("title", "Design review"),
        ("starts_at_ms", starts_at.as_str()),
        ("duration_minutes", "60"),
        ("invitees", invitees),
    ];
    for checkbox in extra {
        fields.push((checkbox, "on"));
    }
    let response = app.call(&host.client, "update_meeting", &fields).await;
    assert_eq!(response.status(), 200, "update_meeting");
}

async fn subscribe(app: &TestApp, meeting: &str) -> broadcast::Receiver<Arc<SharedEvent>> {
    app.state.bus.subscribe(meeting).await.expect("subscribe")
}

/// The next event on the room's bus that `pred` accepts (events are
/// awaited, not slept for; a bound keeps a missing one from hanging).
async fn next_event(
    events: &mut broadcast::Receiver<Arc<SharedEvent>>,
    pred: impl Fn(&RoomEvent) -> bool,
) -> RoomEvent {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = events.recv().await.expect("bus open");
            if pred(&event) {
                return event.event().clone();
            }
        }
    })
    .await
    .expect("the event was published")
}

fn is_access_changed(event: &RoomEvent) -> bool {
    matches!(event, RoomEvent::AccessChanged { .. })
}

async fn ice(app: &TestApp, who: &Person, code: &str) -> (u16, Value) {
    let response = app
        .call(&who.client, "ice_servers", &[("code", code)])
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn has_turn(config: &Value) -> bool {
    config["ice_servers"].as_array().is_some_and(|servers| {
        servers
            .iter()
            .any(|s| s["credential"].is_string() && s["username"].is_string())
    })
}

fn turn_spawn(backend: Backend) -> Spawn {
    let mut spawn = Spawn::new(backend);
    spawn.extra_args = vec![
        "--stun-urls".into(),
        "stun:127.0.0.1:3478".into(),
        "--turn-urls".into(),
        "turn:127.0.0.1:3478".into(),
        "--turn-secret".into(),
        "shared-secret".into(),
    ];
    spawn
}

on_both_databases!(
    current_access_reads_rights_afresh,
    reentry_never_undoes_a_decision,
    settings_changes_take_back_what_they_no_longer_give,
    an_unverified_address_keeps_no_admission_when_the_door_closes,
    cohost_changes_are_announced_and_keep_people_in,
    cancelling_closes_the_call,
    turn_only_for_people_in_a_meeting_in_session,
);

async fn current_access_reads_rights_afresh(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let visitor = guest(&app);
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    let mid = meeting_id(&app, &code).await;
    let (ann_id, bob_id) = (user_id(&app, "ann").await, user_id(&app, "bob").await);

    // Invited but not entered yet: not in the call.
    let before = access(&app, &mid, &bob_id, false).await;
    assert_eq!(before.phase, MeetingPhase::Live);
    assert_eq!(before.role, Role::Invitee);
    assert_eq!(before.peer_role, PeerRole::Member);
    assert_eq!(before.admission, None);
    assert_eq!(
        before.in_call().map_err(app::error::ApiError::from),
        Err(app::error::ApiError::Forbidden)
    );

    enter(&app, &ann, &code, "").await;
    enter(&app, &bob, &code, "").await;
    let host = access(&app, &mid, &ann_id, false).await;
    assert_eq!(host.peer_role, PeerRole::Host);
    assert!(host.in_call().is_ok() && host.is_moderator());
    let member = access(&app, &mid, &bob_id, false).await;
    assert!(member.in_call().is_ok() && !member.is_moderator());

    // Made co-host: seen at the next read.
    set_cohosts(&app, &ann, &code, "bob").await;
    let cohost = access(&app, &mid, &bob_id, false).await;
    assert_eq!(cohost.peer_role, PeerRole::CoHost);
    assert!(cohost.is_moderator());

    // A guest: waiting, then let in, then shut out when guests go off.
    assert_eq!(enter(&app, &visitor, &code, "Gus").await, "Waiting");
    let gus = entered_as(&app, &mid, "Gus").await;
    assert_eq!(
        access(&app, &mid, &gus, true)
            .await
            .in_call()
            .map_err(app::error::ApiError::from),
        Err(app::error::ApiError::Forbidden)
    );
    decide(&app, &ann, &code, &gus, "admit").await;
    let admitted = access(&app, &mid, &gus, true).await;
    assert_eq!(admitted.peer_role, PeerRole::Guest);
    assert!(admitted.in_call().is_ok());
    update(&app, &ann, &code, "bob", &["waiting_room"]).await;
    assert_eq!(
        access(&app, &mid, &gus, true)
            .await
            .in_call()
            .map_err(app::error::ApiError::from),
        Err(app::error::ApiError::Forbidden)
    );

    // Ended: nobody is in the call, the host included, and the upgrade
    // says the same (the host enters again to reopen).
    domain::door::end_meeting(&app.state.db, &mid, domain::clock::now_ms())
        .await
        .expect("end");
    for who in [&ann_id, &bob_id] {
        let ended = access(&app, &mid, who, false).await;
        assert_eq!(ended.phase, MeetingPhase::Ended);
        assert_eq!(
            ended.in_call().map_err(app::error::ApiError::from),
            Err(app::error::ApiError::Ended)
        );
    }
    assert_eq!(
        common::ws::open(&app, &ann.jar, &code).await.status(),
        410,
        "the host's upgrade follows the same rule"
    );
    enter(&app, &ann, &code, "").await;
    assert!(access(&app, &mid, &bob_id, false).await.in_call().is_ok());

    // Cancelled, or a meeting that does not exist: gone.
    let cancelled = app
        .call(&ann.client, "cancel_meeting", &[("code", &code)])
        .await;
    assert_eq!(cancelled.status(), 200);
    let gone = access(&app, &mid, &bob_id, false).await;
    assert_eq!(gone.phase, MeetingPhase::Cancelled);
    assert_eq!(
        gone.in_call().map_err(app::error::ApiError::from),
        Err(app::error::ApiError::NotFound)
    );
    let missing = access(&app, "no-such-meeting", &bob_id, false).await;
    assert_eq!(
        missing.in_call().map_err(app::error::ApiError::from),
        Err(app::error::ApiError::NotFound)
    );
}

async fn reentry_never_undoes_a_decision(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let cat = person(&app, "cat").await;
    let code = instant_meeting(&app, &ann, "", &[]).await;
    let mid = meeting_id(&app, &code).await;
    let (bob_id, cat_id) = (user_id(&app, "bob").await, user_id(&app, "cat").await);
    enter(&app, &ann, &code, "").await;
    assert_eq!(enter(&app, &bob, &code, "").await, "Waiting");
    assert_eq!(enter(&app, &cat, &code, "").await, "Waiting");

    // Bob's re-entry read "waiting" just before the host denied him, and
    // writes its knock just after: the denial stands.
    decide(&app, &ann, &code, &bob_id, "deny").await;
    for wanted in [Admission::Waiting, Admission::Admitted] {
        let stored = record_entry(&app.state.db, &mid, &bob_id, "bob", false, wanted)
            .await
            .expect("record_entry");
        assert_eq!(stored, Admission::Denied, "a late {wanted:?} write");
    }
    assert_eq!(door(&app, &bob, &code).await, "Denied");

    // The same for a removal.
    decide(&app, &ann, &code, &cat_id, "admit").await;
    let removed = app
        .call(
            &ann.client,
            "remove_participant",
            &[("code", code.as_str()), ("participant_id", cat_id.as_str())],
        )
        .await;
    assert_eq!(removed.status(), 200);
    let stored = record_entry(
        &app.state.db,
        &mid,
        &cat_id,
        "cat",
        false,
        Admission::Waiting,
    )
    .await
    .expect("record_entry");
    assert_eq!(stored, Admission::Removed);
    assert_eq!(door(&app, &cat, &code).await, "Removed");

    // A knock still moves on by the rules (invited meanwhile: in).
    let dan = person(&app, "dan").await;
    let dan_id = user_id(&app, "dan").await;
    assert_eq!(enter(&app, &dan, &code, "").await, "Waiting");
    let stored = record_entry(
        &app.state.db,
        &mid,
        &dan_id,
        "dan",
        false,
        Admission::Admitted,
    )
    .await
    .expect("record_entry");
    assert_eq!(stored, Admission::Admitted);
}

async fn settings_changes_take_back_what_they_no_longer_give(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let dan = person(&app, "dan").await;
    let eve = person(&app, "eve").await;
    let visitor = guest(&app);
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    let mid = meeting_id(&app, &code).await;
    let dan_id = user_id(&app, "dan").await;
    set_cohosts(&app, &ann, &code, "eve").await;
    for who in [&ann, &bob, &eve] {
        assert_eq!(enter(&app, who, &code, "").await, "Admitted");
    }
    // Dan knocks and is let in by the host; a guest too.
    assert_eq!(enter(&app, &dan, &code, "").await, "Waiting");
    decide(&app, &ann, &code, &dan_id, "admit").await;
    assert_eq!(enter(&app, &visitor, &code, "Gus").await, "Waiting");
    let gus = entered_as(&app, &mid, "Gus").await;
    decide(&app, &ann, &code, &gus, "admit").await;
    let (bob_call, _, _) = join_call(&app, &bob, &code, None).await;

    // Bob is dropped from the invitees and guests are turned off.
    let mut events = subscribe(&app, &mid).await;
    update(&app, &ann, &code, "", &["waiting_room"]).await;
    assert_eq!(
        next_event(&mut events, is_access_changed).await,
        RoomEvent::AccessChanged {
            participant_id: None
        }
    );
    // Bob was in only by invitation: he knocks again (the host sees him).
    assert_eq!(door(&app, &bob, &code).await, "Waiting");
    let bob_id = user_id(&app, "bob").await;
    let page: Value = app
        .call(&ann.client, "list_knocks", &[("code", &code)])
        .await
        .json()
        .await
        .expect("knocks");
    let knocks = page["knocks"].as_array().cloned().unwrap_or_default();
    assert!(knocks
        .iter()
        .any(|k| k["participant_id"] == bob_id.as_str()));
    // The guest is out; the host's decision about Dan stands; the host and
    // the co-host are never touched.
    assert_eq!(door(&app, &visitor, &code).await, Value::Null);
    assert_eq!(door(&app, &dan, &code).await, "Admitted");
    assert_eq!(door(&app, &eve, &code).await, "Admitted");
    assert_eq!(door(&app, &ann, &code).await, "Admitted");
    // Bob's running call is not his to keep: a reconnect is refused.
    assert_eq!(
        access(&app, &mid, &bob_id, false)
            .await
            .in_call()
            .map_err(app::error::ApiError::from),
        Err(app::error::ApiError::Forbidden)
    );
    assert_eq!(common::ws::open(&app, &bob.jar, &code).await.status(), 403);
    bob_call.close().await;

    // An entry that read the old settings and writes after the change's
    // clean-up ran (the race `enter` guards against by re-reading the
    // revision): the same clean-up, run again, takes it back.
    let late = record_entry(
        &app.state.db,
        &mid,
        &bob_id,
        "bob",
        false,
        Admission::Admitted,
    )
    .await
    .expect("record_entry");
    assert_eq!(late, Admission::Admitted, "the late write lands");
    let revoked = domain::door::revoke_outdated_admissions(&app.state.db, &mid)
        .await
        .expect("revoke");
    assert_eq!(revoked, 1);
    assert_eq!(door(&app, &bob, &code).await, "Waiting");
    assert_eq!(door(&app, &dan, &code).await, "Admitted");

    // With the waiting room off, nobody is sent back.
    update(&app, &ann, &code, "", &["allow_guests"]).await;
    assert_eq!(enter(&app, &bob, &code, "").await, "Admitted");
    update(&app, &ann, &code, "", &["allow_guests"]).await;
    assert_eq!(door(&app, &bob, &code).await, "Admitted");
}

/// Someone let in while the door was open, whose unverified address is on
/// the invitation list, waits again when the host turns the waiting room
/// on: an address counts as an invitation only once verified (the rule
/// that admits, used by the clean-up too). Verified, it does count.
async fn an_unverified_address_keeps_no_admission_when_the_door_closes(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = person(&app, "ann").await;
    let mal = person_with_email(&app, "mal", "mal@example.org").await;
    let code = instant_meeting(&app, &ann, "mal@example.org", &[]).await;
    // The door open (no waiting room): Mal walks in.
    update(&app, &ann, &code, "mal@example.org", &["allow_guests"]).await;
    assert_eq!(enter(&app, &mal, &code, "").await, "Admitted");
    // The host closes the door, the invitation list unchanged.
    update(&app, &ann, &code, "mal@example.org", &["waiting_room"]).await;
    assert_eq!(door(&app, &mal, &code).await, "Waiting");
    // Once Mal proves the address, the invitation lets Mal in.
    common::people::mark_verified(&app, "mal").await;
    assert_eq!(enter(&app, &mal, &code, "").await, "Admitted");
    update(&app, &ann, &code, "mal@example.org", &["waiting_room"]).await;
    assert_eq!(door(&app, &mal, &code).await, "Admitted");
}

async fn cohost_changes_are_announced_and_keep_people_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let cat = person(&app, "cat").await;
    let code = instant_meeting(&app, &ann, "", &[]).await;
    let mid = meeting_id(&app, &code).await;
    let (bob_id, cat_id) = (user_id(&app, "bob").await, user_id(&app, "cat").await);
    enter(&app, &ann, &code, "").await;
    // Cat is knocking when she is named co-host: she goes in.
    assert_eq!(enter(&app, &cat, &code, "").await, "Waiting");

    let mut events = subscribe(&app, &mid).await;
    set_cohosts(&app, &ann, &code, "bob, cat").await;
    let mut told = Vec::new();
    for _ in 0..2 {
        match next_event(&mut events, is_access_changed).await {
            RoomEvent::AccessChanged {
                participant_id: Some(id),
            } => told.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    told.sort();
    let mut expected = vec![bob_id.clone(), cat_id.clone()];
    expected.sort();
    assert_eq!(told, expected);
    assert_eq!(door(&app, &cat, &code).await, "Admitted");
    assert_eq!(enter(&app, &bob, &code, "").await, "Admitted");

    // Bob stops being co-host: told, and he stays in as a participant,
    // also through later settings changes (the host kept him).
    set_cohosts(&app, &ann, &code, "cat").await;
    assert_eq!(
        next_event(&mut events, is_access_changed).await,
        RoomEvent::AccessChanged {
            participant_id: Some(bob_id.clone().into())
        }
    );
    let demoted = access(&app, &mid, &bob_id, false).await;
    assert_eq!(demoted.peer_role, PeerRole::Member);
    assert!(demoted.in_call().is_ok());
    update(&app, &ann, &code, "", &["waiting_room"]).await;
    assert_eq!(door(&app, &bob, &code).await, "Admitted");
}

async fn cancelling_closes_the_call(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    enter(&app, &ann, &code, "").await;
    enter(&app, &bob, &code, "").await;
    let (mut b, _, _) = join_call(&app, &bob, &code, None).await;
    let cancelled = app
        .call(&ann.client, "cancel_meeting", &[("code", &code)])
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        b.recv_until(|m| matches!(m, ServerMessage::MeetingEnded))
            .await,
        ServerMessage::MeetingEnded
    );
    assert_eq!(b.closed_with().await, close::ENDED);
    assert_eq!(common::ws::open(&app, &bob.jar, &code).await.status(), 404);
}

async fn turn_only_for_people_in_a_meeting_in_session(backend: Backend) {
    let app = spawn_with(turn_spawn(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let cat = person(&app, "cat").await;
    let waiting = guest(&app);
    let denied = guest(&app);
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    let mid = meeting_id(&app, &code).await;

    // In session and let in: credentials.
    enter(&app, &ann, &code, "").await;
    enter(&app, &bob, &code, "").await;
    for who in [&ann, &bob] {
        let (status, config) = ice(&app, who, &code).await;
        assert_eq!(status, 200);
        assert!(has_turn(&config), "{} gets TURN", who.name);
    }
    // Waiting, denied or removed: nothing.
    assert_eq!(enter(&app, &waiting, &code, "Wanda").await, "Waiting");
    assert_eq!(enter(&app, &denied, &code, "Dora").await, "Waiting");
    let dora = entered_as(&app, &mid, "Dora").await;
    decide(&app, &ann, &code, &dora, "deny").await;
    assert_eq!(enter(&app, &cat, &code, "").await, "Waiting");
    let cat_id = user_id(&app, "cat").await;
    decide(&app, &ann, &code, &cat_id, "admit").await;
    assert!(has_turn(&ice(&app, &cat, &code).await.1));
    let removed = app
        .call(
            &ann.client,
            "remove_participant",
            &[("code", code.as_str()), ("participant_id", cat_id.as_str())],
        )
        .await;
    assert_eq!(removed.status(), 200);
    for who in [&waiting, &denied, &cat] {
        let (status, config) = ice(&app, who, &code).await;
        assert_eq!(status, 403, "{} is refused", who.name);
        assert!(!has_turn(&config));
    }

    // A host ends the meeting: nobody gets credentials any more, the host
    // included, until a host enters again.
    let (mut a, _, _) = join_call(&app, &ann, &code, None).await;
    a.send(&app::protocol::ClientMessage::EndMeeting).await;
    assert_eq!(a.closed_with().await, close::ENDED);
    for who in [&ann, &bob] {
        let (status, config) = ice(&app, who, &code).await;
        assert_eq!(status, 410, "{} after the end", who.name);
        assert!(!has_turn(&config));
    }
    enter(&app, &ann, &code, "").await;
    assert!(has_turn(&ice(&app, &bob, &code).await.1));

    // Outside its scheduled time, a meeting no host or co-host started
    // hands out STUN only, even to someone admitted (the page still works).
    let day = 24 * 3_600_000_i64;
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query("UPDATE meeting_admissions SET state = 'waiting' WHERE participant_id = $1")
        .bind(user_id(&app, "ann").await)
        .execute(&app.state.db)
        .await
        .expect("host not in");
    for starts_at in [now + day, now - day] {
        sqlx::query("UPDATE meetings SET starts_at = $1 WHERE id = $2")
            .bind(starts_at)
            .bind(&mid)
            .execute(&app.state.db)
            .await
            .expect("move the meeting");
        let (status, config) = ice(&app, &bob, &code).await;
        assert_eq!(status, 200);
        assert!(!has_turn(&config), "no TURN outside the window");
        assert_eq!(config["ice_servers"][0]["urls"][0], "stun:127.0.0.1:3478");
        assert_eq!(config["expires_at_ms"], Value::Null);
    }
    // Started by its host: in session until ended.
    enter(&app, &ann, &code, "").await;
    assert!(has_turn(&ice(&app, &bob, &code).await.1));
}

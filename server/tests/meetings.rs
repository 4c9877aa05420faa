//! Meetings over HTTP: scheduling, lists, authorization, uniform misses,
//! guessing limits and the calendar file, on SQLite and PostgreSQL.

mod common;

use common::{spawn_app, Backend, TestApp};
use reqwest::Client;
use serde_json::Value;

const HOUR_MS: i64 = 3_600_000;

type BadCase<'a> = (Vec<(&'a str, &'a str)>, &'a str, Value);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn user(app: &TestApp, name: &str, email: &str) -> Client {
    app.signed_up_client(name, email).await
}

async fn schedule(app: &TestApp, client: &Client, fields: &[(&str, &str)]) -> reqwest::Response {
    app.call(client, "schedule_meeting", fields).await
}

/// Schedules a valid meeting an hour from now and returns its code.
async fn schedule_ok(app: &TestApp, client: &Client, title: &str, invitees: &str) -> String {
    let starts = (now_ms() + HOUR_MS).to_string();
    let response = schedule(
        app,
        client,
        &[
            ("title", title),
            ("description", "Weekly sync, agenda in the doc"),
            ("starts_at_ms", &starts),
            ("duration_minutes", "45"),
            ("invitees", invitees),
            ("waiting_room", "on"),
            ("max_participants", "12"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let code: String = response.json().await.unwrap();
    assert_eq!(code.len(), 26);
    code
}

/// `attr="…"` replaced by `attr="*"` everywhere in `html`.
fn strip_attr(html: &str, attr: &str) -> String {
    let needle = format!("{attr}=\"");
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        out.push_str(&rest[..i + needle.len()]);
        rest = &rest[i + needle.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push('*');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

async fn get(app: &TestApp, client: &Client, code: &str) -> reqwest::Response {
    app.call(client, "get_meeting", &[("code", code)]).await
}

async fn lists(app: &TestApp, client: &Client) -> Value {
    let response = app.call(client, "list_meetings", &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

on_both_databases!(
    scheduling_and_lists,
    bad_input_stores_nothing,
    only_hosts_and_cohosts_change_a_meeting,
    every_miss_answers_like_a_missing_meeting,
    calendar_file_is_valid_icalendar,
);

async fn scheduling_and_lists(backend: Backend) {
    let app = spawn_app(backend).await;
    let host = user(&app, "hostess", "").await;
    let invitee = user(&app, "invitee", "").await;
    let outsider = user(&app, "outsider", "").await;

    let code = schedule_ok(&app, &host, "Design review", "invitee, later@example.org").await;

    let mine = lists(&app, &host).await;
    assert_eq!(mine["upcoming"].as_array().unwrap().len(), 1);
    let meeting = &mine["upcoming"][0];
    assert_eq!(meeting["title"], "Design review");
    assert_eq!(meeting["role"], "Host");
    assert_eq!(meeting["duration_minutes"], 45);
    assert_eq!(meeting["max_participants"], 12);
    assert_eq!(meeting["waiting_room"], true);
    assert_eq!(meeting["allow_guests"], false);
    assert_eq!(meeting["link"], format!("{}/m/{code}", app.base));
    assert_eq!(
        meeting["invitees"],
        serde_json::json!(["invitee", "later@example.org"])
    );

    assert_eq!(
        lists(&app, &invitee).await["upcoming"][0]["role"],
        "Invitee"
    );
    assert_eq!(
        lists(&app, &outsider).await["upcoming"],
        serde_json::json!([])
    );
    // Someone invited by address sees it once they have an account with it,
    // and have proved the address.
    let later = user(&app, "latecomer", "Later@Example.org").await;
    assert_eq!(lists(&app, &later).await["upcoming"], serde_json::json!([]));
    common::people::mark_verified(&app, "latecomer").await;
    assert_eq!(lists(&app, &later).await["upcoming"][0]["role"], "Invitee");

    // Anyone with the link sees the meeting, as a visitor.
    let seen: Value = get(&app, &outsider, &code).await.json().await.unwrap();
    assert_eq!(seen["role"], "Visitor");
    assert_eq!(seen["host_name"], "hostess");

    // An instant meeting starts now and can be joined at once.
    let response = schedule(
        &app,
        &host,
        &[
            ("title", "Quick call"),
            ("instant", "1"),
            ("waiting_room", "on"),
            ("allow_guests", "on"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let instant: String = response.json().await.unwrap();
    let meeting: Value = get(&app, &host, &instant).await.json().await.unwrap();
    let starts = meeting["starts_at_ms"].as_i64().unwrap();
    assert!(
        (now_ms() - starts).abs() < 60_000,
        "instant meeting starts now"
    );
    assert_eq!(meeting["duration_minutes"], 60);
    assert_eq!(meeting["allow_guests"], true);

    // Signed-out people cannot schedule or list.
    let anonymous = app.client();
    let refused = schedule(&app, &anonymous, &[("title", "x"), ("instant", "1")]).await;
    let status = refused.status();
    assert_eq!(status, 401, "{}", refused.text().await.unwrap());
    assert_eq!(
        app.call(&anonymous, "list_meetings", &[]).await.status(),
        401
    );
}

async fn bad_input_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let host = user(&app, "planner", "").await;
    let future = (now_ms() + HOUR_MS).to_string();
    let past = (now_ms() - 2 * HOUR_MS).to_string();
    let long_title = "t".repeat(121);
    // (form fields, the field refused, the problem named)
    let cases: Vec<BadCase> = vec![
        (
            vec![
                ("title", "Past"),
                ("starts_at_ms", &past),
                ("duration_minutes", "30"),
            ],
            "starts_at_ms",
            "InThePast".into(),
        ),
        (
            vec![
                ("title", "Zero"),
                ("starts_at_ms", &future),
                ("duration_minutes", "0"),
            ],
            "duration_minutes",
            "OutOfRange".into(),
        ),
        (
            vec![
                ("title", "Huge"),
                ("starts_at_ms", &future),
                ("duration_minutes", "100000"),
            ],
            "duration_minutes",
            "OutOfRange".into(),
        ),
        (
            vec![
                ("title", "NaN"),
                ("starts_at_ms", "soon"),
                ("duration_minutes", "30"),
            ],
            "starts_at_ms",
            "OutOfRange".into(),
        ),
        (
            vec![
                ("title", &long_title),
                ("starts_at_ms", &future),
                ("duration_minutes", "30"),
            ],
            "title",
            "TooLong".into(),
        ),
        (
            vec![
                ("title", "  "),
                ("starts_at_ms", &future),
                ("duration_minutes", "30"),
            ],
            "title",
            "Required".into(),
        ),
        (
            vec![
                ("title", "Ghosts"),
                ("starts_at_ms", &future),
                ("duration_minutes", "30"),
                ("invitees", "ghost, nope@"),
            ],
            "invitees",
            serde_json::json!({"UnknownInvitees": ["ghost", "nope@"]}),
        ),
        (
            vec![
                ("title", "Crowd"),
                ("starts_at_ms", &future),
                ("duration_minutes", "30"),
                ("max_participants", "100000"),
            ],
            "max_participants",
            "OutOfRange".into(),
        ),
    ];
    for (fields, field, problem) in cases {
        let response = schedule(&app, &host, &fields).await;
        assert_eq!(response.status(), 422, "{fields:?}");
        let body: Value = response.json().await.unwrap();
        let errors = body["Invalid"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["problem"] == problem),
            "{field} {problem} not in {body}"
        );
    }
    assert_eq!(app.count("meetings").await, 0);
    assert_eq!(app.count("meeting_invitees").await, 0);
}

async fn only_hosts_and_cohosts_change_a_meeting(backend: Backend) {
    let app = spawn_app(backend).await;
    let host = user(&app, "owner", "").await;
    let cohost = user(&app, "helper", "").await;
    let invitee = user(&app, "guestuser", "").await;
    let outsider = user(&app, "stranger", "").await;
    let anonymous = app.client();
    let code = schedule_ok(&app, &host, "Planning", "guestuser").await;
    let later = (now_ms() + 2 * HOUR_MS).to_string();
    let update_fields = |title: &str| {
        vec![
            ("code".to_string(), code.clone()),
            ("title".to_string(), title.to_string()),
            ("starts_at_ms".to_string(), later.clone()),
            ("duration_minutes".to_string(), "30".to_string()),
            ("invitees".to_string(), "guestuser".to_string()),
        ]
    };
    let update = |client: &Client, title: &str| {
        let fields = update_fields(title);
        let request = client.post(app.url("/api/update_meeting")).form(&fields);
        async move { request.send().await.unwrap() }
    };

    for (who, client) in [("invitee", &invitee), ("outsider", &outsider)] {
        assert_eq!(
            update(client, "Hijacked").await.status(),
            403,
            "{who} edits"
        );
        assert_eq!(
            app.call(client, "cancel_meeting", &[("code", &code)])
                .await
                .status(),
            403,
            "{who} cancels"
        );
        assert_eq!(
            app.call(
                client,
                "set_cohosts",
                &[("code", &code), ("cohosts", "stranger")]
            )
            .await
            .status(),
            403
        );
    }
    assert_eq!(update(&anonymous, "Hijacked").await.status(), 401);
    assert_eq!(
        app.call(&anonymous, "cancel_meeting", &[("code", &code)])
            .await
            .status(),
        401
    );

    // The host names a co-host; the co-host may edit but not name others.
    let named = app
        .call(
            &host,
            "set_cohosts",
            &[("code", &code), ("cohosts", "helper")],
        )
        .await;
    assert_eq!(named.status(), 200);
    assert_eq!(
        get(&app, &cohost, &code)
            .await
            .json::<Value>()
            .await
            .unwrap()["role"],
        "CoHost"
    );
    assert_eq!(update(&cohost, "Planning, moved").await.status(), 200);
    let seen: Value = get(&app, &invitee, &code).await.json().await.unwrap();
    assert_eq!(seen["title"], "Planning, moved", "invitees see the change");
    assert_eq!(seen["starts_at_ms"].as_i64().unwrap().to_string(), later);
    assert_eq!(
        app.call(
            &cohost,
            "set_cohosts",
            &[("code", &code), ("cohosts", "stranger")]
        )
        .await
        .status(),
        403
    );
    let unknown = app
        .call(
            &host,
            "set_cohosts",
            &[("code", &code), ("cohosts", "nobody")],
        )
        .await;
    assert_eq!(unknown.status(), 422);

    // Cancelling: the link stops working, and invitees see it cancelled.
    assert_eq!(
        app.call(&cohost, "cancel_meeting", &[("code", &code)])
            .await
            .status(),
        200
    );
    assert_eq!(get(&app, &host, &code).await.status(), 404);
    let listed = lists(&app, &invitee).await;
    assert_eq!(listed["upcoming"][0]["cancelled"], true);
    assert_eq!(update(&host, "Revived").await.status(), 404);
}

async fn every_miss_answers_like_a_missing_meeting(backend: Backend) {
    let app = spawn_app(backend).await;
    let host = user(&app, "keeper", "").await;
    let cancelled = schedule_ok(&app, &host, "Old", "").await;
    assert_eq!(
        app.call(&host, "cancel_meeting", &[("code", &cancelled)])
            .await
            .status(),
        200
    );
    let live = schedule_ok(&app, &host, "Live", "").await;
    // Same length and alphabet as a real code, but never issued.
    let guessed: String = live.chars().rev().collect();
    let misses = [
        guessed.as_str(),
        cancelled.as_str(),
        "short",
        "NOT-a-code-and-far-too-long-0123456789",
    ];

    let visitor = app.client();
    let mut api = Vec::new();
    let mut pages = Vec::new();
    let mut files = Vec::new();
    for code in misses {
        let response = get(&app, &visitor, code).await;
        api.push((response.status(), response.text().await.unwrap()));
        let page = visitor
            .get(app.url(&format!("/m/{code}")))
            .send()
            .await
            .unwrap();
        pages.push((page.status(), page.text().await.unwrap()));
        let file = visitor
            .get(app.url(&format!("/m/{code}/invite.ics")))
            .send()
            .await
            .unwrap();
        files.push((file.status(), file.text().await.unwrap()));
    }
    // Pages carry a fresh script nonce each time; nothing else may differ.
    let without_nonce = |(status, body): &(reqwest::StatusCode, String)| {
        (
            *status,
            strip_attr(&strip_attr(body, "nonce"), "crossorigin"),
        )
    };
    for answers in [&api[..], &pages[..], &files[..]] {
        let first = without_nonce(&answers[0]);
        assert_eq!(first.0, 404);
        for answer in answers.iter() {
            assert_eq!(without_nonce(answer), first, "every miss answers alike");
        }
    }
    // The live one is found, by page and by call.
    assert_eq!(get(&app, &visitor, &live).await.status(), 200);
    let page = visitor
        .get(app.url(&format!("/m/{live}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Live"));

    // Guessing is limited: after 30 misses the address is refused for a while.
    let guesser = app.client();
    let mut statuses = Vec::new();
    for i in 0..30 {
        let code = format!("{}{:02}", &guessed[..24], i);
        statuses.push(get(&app, &guesser, &code).await.status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 404 || *s == 429),
        "{statuses:?}"
    );
    let refused = get(&app, &guesser, &live).await;
    assert_eq!(refused.status(), 429, "even a right code waits once locked");
}

async fn calendar_file_is_valid_icalendar(backend: Backend) {
    let app = spawn_app(backend).await;
    let host = user(&app, "organizer", "").await;
    let title = "Budget; Q3, review \\ plan";
    let code = schedule_ok(&app, &host, title, "").await;
    let meeting: Value = get(&app, &host, &code).await.json().await.unwrap();
    let starts = meeting["starts_at_ms"].as_i64().unwrap();

    let response = reqwest::get(app.url(&format!("/m/{code}/invite.ics")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/calendar"));
    let text = response.text().await.unwrap();
    assert!(text.contains("\r\n"), "RFC 5545 lines end in CRLF");

    let mut calendars = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let calendar = calendars.next().expect("one calendar").expect("parses");
    let prop = |props: &[ical::property::Property], name: &str| {
        props
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(prop(&calendar.properties, "VERSION"), "2.0");
    assert!(!prop(&calendar.properties, "PRODID").is_empty());
    assert_eq!(calendar.events.len(), 1);
    let event = &calendar.events[0].properties;
    assert!(prop(event, "UID").contains('@'));
    let utc = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y%m%dT%H%M%SZ")
            .to_string()
    };
    assert_eq!(prop(event, "DTSTART"), utc(starts));
    assert_eq!(prop(event, "DTEND"), utc(starts + 45 * 60_000));
    assert!(prop(event, "DTSTAMP").ends_with('Z'));
    // The parser keeps RFC 5545 escapes; undo them to compare.
    let unescape = |s: String| {
        s.replace("\\n", "\n")
            .replace("\\,", ",")
            .replace("\\;", ";")
            .replace("\\\\", "\\")
    };
    assert_eq!(unescape(prop(event, "SUMMARY")), title);
    let link = format!("{}/m/{code}", app.base);
    let description = unescape(prop(event, "DESCRIPTION"));
    assert!(
        description.contains("Weekly sync, agenda in the doc"),
        "{description}"
    );
    assert!(description.contains(&link), "{description}");
    assert!(prop(event, "ORGANIZER").starts_with("mailto:"));
    let organizer = event.iter().find(|p| p.name == "ORGANIZER").unwrap();
    let params = organizer.params.clone().unwrap_or_default();
    assert!(
        params
            .iter()
            .any(|(k, v)| k == "CN" && v.iter().any(|v| v.contains("organizer"))),
        "{params:?}"
    );
}

//! `/api/v1` with personal API tokens: scopes, revocation, other people's
//! meetings, the rate limit, and JSON errors with stable codes.

mod common;

use common::people::{join_call, meeting_with_everyone, person, Person};
use common::{spawn_app, spawn_with, Backend, Spawn, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Makes a token on the profile page's server function; returns the secret.
async fn token(app: &TestApp, who: &Person, scope: &str) -> String {
    let response = app
        .call(
            &who.client,
            "create_api_token",
            &[("name", "my script"), ("scope", scope)],
        )
        .await;
    assert_eq!(response.status(), 200, "create_api_token");
    let created: Value = response.json().await.expect("new token");
    let secret = created["token"].as_str().expect("token").to_string();
    assert!(secret.starts_with("moim_"), "{created}");
    secret
}

/// `POST /api/v1/meetings` with this JSON body, as a script would send it.
async fn post_meeting(app: &TestApp, secret: &str, body: &Value) -> reqwest::Response {
    script()
        .post(app.url("/api/v1/meetings"))
        .bearer_auth(secret)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `GET` an API path with a token, as a script would send it.
async fn get_api(app: &TestApp, secret: &str, path: &str) -> reqwest::Response {
    script()
        .get(app.url(path))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
}

/// A client with no cookies at all (as a script would be).
fn script() -> reqwest::Client {
    reqwest::Client::new()
}

async fn error_code(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error");
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, code, body)
}

fn meeting_body(title: &str) -> Value {
    json!({
        "title": title,
        "starts_at_ms": domain::clock::now_ms() + 3_600_000,
        "duration_minutes": 45,
        "media_mode": "Direct",
    })
}

on_both_databases!(a_manage_token_creates_changes_and_cancels_meetings);

async fn a_manage_token_creates_changes_and_cancels_meetings(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = person(&app, "ann").await;
    let secret = token(&app, &ann, "manage").await;
    let api = script();

    let created = post_meeting(&app, &secret, &meeting_body("Planning")).await;
    assert_eq!(created.status(), 201);
    let meeting: Value = created.json().await.unwrap();
    let code = meeting["code"].as_str().expect("code").to_string();
    assert_eq!(meeting["title"], "Planning");
    assert_eq!(meeting["duration_minutes"], 45);
    assert_eq!(meeting["media_mode"], "Direct");
    assert_eq!(meeting["role"], "Host");

    // The owner sees it on the pages too.
    let listed = app.call(&ann.client, "list_meetings", &[]).await;
    let listed: Value = listed.json().await.unwrap();
    assert!(listed.to_string().contains(&code), "{listed}");

    // Change one field; the rest stays.
    let changed = api
        .patch(app.url(&format!("/api/v1/meetings/{code}")))
        .bearer_auth(&secret)
        .json(&json!({ "title": "Planning (moved)" }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["title"], "Planning (moved)");
    assert_eq!(changed["duration_minutes"], 45);
    assert_eq!(changed["starts_at_ms"], meeting["starts_at_ms"]);

    let list = get_api(&app, &secret, "/api/v1/meetings").await;
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["upcoming"][0]["code"], code.as_str(), "{list}");

    let cancelled = api
        .delete(app.url(&format!("/api/v1/meetings/{code}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 204);
    let gone = get_api(&app, &secret, &format!("/api/v1/meetings/{code}")).await;
    let (status, code, _) = error_code(gone).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_token_everything_is_401_in_json() {
    let app = spawn_app(Backend::Sqlite).await;
    let ann = person(&app, "ann").await;
    let api = script();
    let none = api.get(app.url("/api/v1/meetings")).send().await.unwrap();
    assert!(none.headers().get("www-authenticate").is_some());
    let (status, code, _) = error_code(none).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));

    let forged = api
        .get(app.url("/api/v1/meetings"))
        .bearer_auth("moim_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(forged).await.0, 401);

    // A signed-in browser's cookie is no API credential.
    let with_cookie = ann
        .client
        .get(app.url("/api/v1/meetings"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(with_cookie).await.0, 401);

    let unknown = api
        .get(app.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unknown).await.0, 404);

    // Guessing tokens from one address runs into a limit.
    let mut statuses = Vec::new();
    for n in 0..35 {
        let guess = api
            .get(app.url("/api/v1/meetings"))
            .bearer_auth(format!("moim_guess{n:039}"))
            .send()
            .await
            .unwrap();
        statuses.push(guess.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[0], 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_reads_but_cannot_change_and_a_revoked_one_stops_at_once() {
    let app = spawn_app(Backend::Sqlite).await;
    let ann = person(&app, "ann").await;
    let secret = token(&app, &ann, "read").await;
    let read = get_api(&app, &secret, "/api/v1/meetings").await;
    assert_eq!(read.status(), 200);
    let write = post_meeting(&app, &secret, &meeting_body("Not allowed")).await;
    let (status, code, _) = error_code(write).await;
    assert_eq!((status, code.as_str()), (403, "insufficient_scope"));
    assert_eq!(app.count("meetings").await, 0);

    // The profile page lists it (without the secret), then revokes it.
    let listed = app.call(&ann.client, "list_api_tokens", &[]).await;
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(!listed.to_string().contains(&secret));
    assert!(
        listed[0]["last_used_at_ms"].is_i64(),
        "use is noted: {listed}"
    );
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let revoked = app
        .call(&ann.client, "revoke_api_token", &[("id", id.as_str())])
        .await;
    assert_eq!(revoked.status(), 200);
    let after = get_api(&app, &secret, "/api/v1/meetings").await;
    assert_eq!(error_code(after).await.0, 401);

    // Nobody revokes someone else's token.
    let bob = person(&app, "bob").await;
    token(&app, &ann, "read").await;
    let anns: Value = app
        .call(&ann.client, "list_api_tokens", &[])
        .await
        .json()
        .await
        .unwrap();
    let anns_id = anns[0]["id"].as_str().unwrap().to_string();
    let stolen = app
        .call(&bob.client, "revoke_api_token", &[("id", anns_id.as_str())])
        .await;
    assert_eq!(stolen.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_persons_meeting_cannot_be_changed_cancelled_or_watched() {
    let app = spawn_app(Backend::Sqlite).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = meeting_with_everyone(&app, std::slice::from_ref(&ann)).await;
    let bobs = token(&app, &bob, "manage").await;
    let api = script();
    let patch = api
        .patch(app.url(&format!("/api/v1/meetings/{code}")))
        .bearer_auth(&bobs)
        .json(&json!({ "title": "Taken over" }))
        .send()
        .await
        .unwrap();
    let (status, code_name, _) = error_code(patch).await;
    assert_eq!((status, code_name.as_str()), (403, "forbidden"));
    let delete = api
        .delete(app.url(&format!("/api/v1/meetings/{code}")))
        .bearer_auth(&bobs)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(delete).await.0, 403);
    let watch = get_api(
        &app,
        &bobs,
        &format!("/api/v1/meetings/{code}/participants"),
    )
    .await;
    assert_eq!(error_code(watch).await.0, 403);
    let meeting: Value = app
        .call(&ann.client, "get_meeting", &[("code", code.as_str())])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meeting["title"], "Chat test", "unchanged: {meeting}");
    assert_eq!(meeting["cancelled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_of_a_live_call_and_a_transcript_only_after_the_end() {
    let app = spawn_app(Backend::Sqlite).await;
    let ann = person(&app, "ann").await;
    let code = meeting_with_everyone(&app, std::slice::from_ref(&ann)).await;
    let secret = token(&app, &ann, "read").await;
    let (mut ws, _, _) = join_call(&app, &ann, &code, None).await;
    let people = get_api(
        &app,
        &secret,
        &format!("/api/v1/meetings/{code}/participants"),
    )
    .await;
    assert_eq!(people.status(), 200);
    let people: Value = people.json().await.unwrap();
    assert_eq!(people[0]["display_name"], "ann", "{people}");
    assert_eq!(people.as_array().map(Vec::len), Some(1));

    let transcript = get_api(
        &app,
        &secret,
        &format!("/api/v1/meetings/{code}/transcript"),
    )
    .await;
    let (status, code_name, _) = error_code(transcript).await;
    assert_eq!((status, code_name.as_str()), (409, "not_over"));

    // Said in the call, then the host ends the meeting: the transcript.
    ws.send(&common::chatter::chat("k1", "minutes: ship it"))
        .await;
    ws.recv_until(|m| matches!(m, app::protocol::ServerMessage::ChatAck { .. }))
        .await;
    ws.send(&app::protocol::ClientMessage::EndMeeting).await;
    ws.closed_with().await;
    let transcript = get_api(
        &app,
        &secret,
        &format!("/api/v1/meetings/{code}/transcript"),
    )
    .await;
    assert_eq!(transcript.status(), 200);
    let transcript: Value = transcript.json().await.unwrap();
    assert_eq!(
        transcript["messages"][0]["text"], "minutes: ship it",
        "{transcript}"
    );
    assert_eq!(transcript["messages"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_each_token_is_rate_limited() {
    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = vec!["--api-requests-per-minute".into(), "6".into()];
    let app = spawn_with(spawn).await;
    let ann = person(&app, "ann").await;
    let secret = token(&app, &ann, "manage").await;
    let api = script();
    let broken = api
        .post(app.url("/api/v1/meetings"))
        .bearer_auth(&secret)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(broken).await.1, "invalid_json", "malformed JSON");
    let no_start = post_meeting(&app, &secret, &json!({ "title": "When?" })).await;
    let (status, code, body) = error_code(no_start).await;
    assert_eq!((status, code.as_str()), (422, "invalid"));
    assert!(
        body["error"]["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|e| e["field"] == "starts_at_ms")),
        "{body}"
    );
    // Six a minute: the rest of the budget, then 429 with Retry-After.
    let mut limited = None;
    for _ in 0..6 {
        let response = get_api(&app, &secret, "/api/v1/meetings").await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the token runs into its limit");
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(error_code(limited).await.1, "rate_limited");
    // Another token has its own budget.
    let other = token(&app, &ann, "read").await;
    let fresh = get_api(&app, &other, "/api/v1/meetings").await;
    assert_eq!(fresh.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_revokes_every_token() {
    let app = spawn_app(Backend::Sqlite).await;
    let ann = person(&app, "ann").await;
    let secret = token(&app, &ann, "manage").await;
    let before = get_api(&app, &secret, "/api/v1/meetings").await;
    assert_eq!(before.status(), 200);
    let changed = app
        .call(
            &ann.client,
            "change_password",
            &[
                ("current_password", "correct horse battery"),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(changed.status(), 200);
    let after = get_api(&app, &secret, "/api/v1/meetings").await;
    assert_eq!(error_code(after).await.0, 401);
    let listed: Value = app
        .call(&ann.client, "list_api_tokens", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

/// The names of an object's fields.
fn field_names(object: &Value) -> BTreeSet<String> {
    object
        .as_object()
        .unwrap_or_else(|| panic!("an object: {object}"))
        .keys()
        .cloned()
        .collect()
}

/// A list of field names (a schema's `required`), none if absent.
fn name_list(names: &Value) -> BTreeSet<String> {
    names
        .as_array()
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str().expect("a name").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// One of the document's schemas: its properties and its required fields.
fn schema(doc: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = &doc["components"]["schemas"][name];
    (
        field_names(&schema["properties"]),
        name_list(&schema["required"]),
    )
}

/// An answer has exactly the fields its schema lists, all of them required.
fn assert_shape(doc: &Value, name: &str, answer: &Value) {
    let (properties, required) = schema(doc, name);
    assert_eq!(field_names(answer), properties, "{name}: {answer}");
    assert_eq!(required, properties, "{name}: every field is always sent");
}

/// `docs/openapi.json`, as served at `/api/v1/openapi.json`: every operation
/// it lists is served and asks for a token (and no method it leaves out is
/// served on its paths), a body built from its input schema is accepted,
/// and each object it describes has exactly the fields of the real answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_api() {
    let app = spawn_app(Backend::Sqlite).await;
    let api = script();
    let served = api
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    let doc: Value = served.json().await.expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");

    // Operations: documented ones answer 401 without a token (200 for the
    // public document), others 405. An unknown path would be 404.
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let url = app.url(&path.replace("{code}", "q4hx7kd2mzp9wt3ncfr8vbj6ea"));
        for method in ["get", "post", "put", "patch", "delete"] {
            let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let status = api.request(verb, &url).send().await.unwrap().status();
            match item.get(method) {
                Some(operation) => {
                    let public = operation["security"].as_array().is_some_and(Vec::is_empty);
                    let expected = if public { 200 } else { 401 };
                    assert_eq!(status, expected, "{method} {path}");
                    operations.push(format!("{method} {path}"));
                }
                None => assert_eq!(status, 405, "{method} {path} is not in the document"),
            }
        }
    }
    assert_eq!(operations.len(), 8, "{operations:?}");

    // The input: a body with every documented field creates a meeting;
    // a field the document does not list is refused.
    let ann = person(&app, "ann").await;
    let secret = token(&app, &ann, "manage").await;
    let every_field = json!({
        "title": "Described",
        "description": "Every field the document lists",
        "starts_at_ms": domain::clock::now_ms() + 3_600_000,
        "duration_minutes": 30,
        "invitees": [],
        "waiting_room": false,
        "allow_guests": true,
        "max_participants": 10,
        "media_mode": "Server",
        "instant": false,
    });
    assert_eq!(field_names(&every_field), schema(&doc, "MeetingInput").0);
    let created = post_meeting(&app, &secret, &every_field).await;
    assert_eq!(created.status(), 201);
    let meeting: Value = created.json().await.unwrap();
    assert_shape(&doc, "Meeting", &meeting);
    assert_eq!(meeting["media_mode"], "Server");
    let mut extra = every_field.clone();
    extra["colour"] = json!("blue");
    let refused = post_meeting(&app, &secret, &extra).await;
    let (status, code, error) = error_code(refused).await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    assert_shape(&doc, "Error", &error);

    let listed: Value = get_api(&app, &secret, "/api/v1/meetings")
        .await
        .json()
        .await
        .unwrap();
    assert_shape(&doc, "MeetingList", &listed);

    // Errors: the codes seen are in the document's list; `fields` entries
    // have the fields it names.
    let detail = &doc["components"]["schemas"]["Error"]["properties"]["error"];
    let (error_fields, error_required) = (
        field_names(&detail["properties"]),
        name_list(&detail["required"]),
    );
    let codes = detail["properties"]["code"]["enum"]
        .as_array()
        .expect("the error codes")
        .clone();
    let no_start = post_meeting(&app, &secret, &json!({ "title": "When?" })).await;
    let (status, code, invalid) = error_code(no_start).await;
    assert_eq!((status, code.as_str()), (422, "invalid"));
    assert_eq!(field_names(&invalid["error"]), error_fields);
    assert_shape(&doc, "FieldError", &invalid["error"]["fields"][0]);
    let unknown = get_api(&app, &secret, "/api/v1/meetings/q4hx7kd2mzp9wt3ncfr8vbj6ea").await;
    let (_, not_found, plain) = error_code(unknown).await;
    assert_eq!(field_names(&plain["error"]), error_required);
    for seen in [&code, &not_found, &"unauthorized".to_string()] {
        assert!(
            codes.contains(&json!(seen)),
            "{seen} is not in the document"
        );
    }

    // The call's people, and a transcript once it is over.
    let code = meeting_with_everyone(&app, std::slice::from_ref(&ann)).await;
    let (mut ws, _, _) = join_call(&app, &ann, &code, None).await;
    let people: Value = get_api(
        &app,
        &secret,
        &format!("/api/v1/meetings/{code}/participants"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_shape(&doc, "Participant", &people[0]);
    ws.send(&common::chatter::chat("k1", "described")).await;
    ws.recv_until(|m| matches!(m, app::protocol::ServerMessage::ChatAck { .. }))
        .await;
    ws.send(&app::protocol::ClientMessage::EndMeeting).await;
    ws.closed_with().await;
    let transcript: Value = get_api(
        &app,
        &secret,
        &format!("/api/v1/meetings/{code}/transcript"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_shape(&doc, "Transcript", &transcript);
    assert_shape(&doc, "ChatMessage", &transcript["messages"][0]);
}

//! Fuzzing everything that parses or writes attacker input, on the stable
//! toolchain (no nightly here, so no `cargo fuzz`): proptest strategies
//! generate inputs, and a small runner feeds each target for a set time,
//! catching panics, and prints executions and failures per target.
//!
//! - In every test run each target runs for `MOIM_FUZZ_SECONDS` (default 2).
//! - A long run, nightly-style (5 minutes a target, optimised):
//!   `MOIM_FUZZ_SECONDS=300 cargo test --release -p moim-server --test fuzz -- --nocapture --test-threads 1`
//!   (`scripts/fuzz.sh` does exactly that).
//!
//! A failing input is printed with the target's name; a test fails when
//! any target saw a failure.

mod common;

use app::protocol::{parse_client_message, ChatMessage};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

fn budget() -> Duration {
    let seconds = std::env::var("MOIM_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(seconds)
}

/// Feeds `check` with values of `strategy` until the budget is spent.
/// `check` returns Err for a broken property; a panic counts as a crash.
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(&S::Value) -> Result<(), String>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::deterministic();
    let deadline = Instant::now() + budget();
    let (mut executions, mut failures, mut crashes) = (0u64, 0u64, 0u64);
    let mut first_failure: Option<String> = None;
    while Instant::now() < deadline {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let value = tree.current();
        executions += 1;
        match std::panic::catch_unwind(AssertUnwindSafe(|| check(&value))) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                failures += 1;
                first_failure.get_or_insert_with(|| format!("{why}\n  input: {value:?}"));
            }
            Err(_) => {
                crashes += 1;
                first_failure.get_or_insert_with(|| format!("panic\n  input: {value:?}"));
            }
        }
    }
    println!("fuzz {name}: {executions} executions, {failures} failures, {crashes} crashes");
    assert!(executions > 0, "{name} ran nothing");
    if let Some(first) = first_failure {
        panic!("fuzz {name}: {first}");
    }
}

/// Text an attacker would try: any Unicode, with the troublesome
/// characters (controls, line and paragraph separators, bidi overrides,
/// quotes, CR) much more likely than chance.
fn nasty_text() -> impl Strategy<Value = String> {
    let nasty = prop::sample::select(vec![
        '\r', '\n', '\t', '\0', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}', '\u{202e}',
        '\u{2066}', '\u{200b}', '\u{feff}', '"', '\\', ';', ',', ':', '<', '>', '&', '#', '*', '[',
        ']', '`', '|', '>', ' ', 'é', '한', '😀',
    ]);
    prop::collection::vec(prop_oneof![3 => nasty, 2 => any::<char>()], 0..120)
        .prop_map(|chars| chars.into_iter().collect())
}

/// JSON-shaped client messages: known and unknown types, right and wrong
/// field types, nested junk.
fn client_json() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec![
        "join",
        "ping",
        "signal",
        "media",
        "leave",
        "ask_to_mute",
        "remove",
        "end_meeting",
        "chat_send",
        "chat_sync",
        "chat_history",
        "welcome",
        "",
        "JOIN",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)),
        nasty_text().prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    let field = prop::sample::select(vec![
        "version",
        "resume",
        "media",
        "to",
        "signal",
        "peer",
        "key",
        "text",
        "after",
        "before",
        "mic",
        "cam",
        "sdp",
        "sdp_type",
        "candidate",
        "x",
    ]);
    (kind, prop::collection::vec((field, value), 0..6)).prop_map(|(kind, fields)| {
        let mut object = serde_json::Map::new();
        object.insert("type".into(), kind.into());
        for (name, value) in fields {
            object.insert(name.into(), value);
        }
        serde_json::Value::Object(object).to_string()
    })
}

#[test]
fn protocol_decoder() {
    fuzz("protocol decoder (JSON-shaped)", client_json(), |text| {
        round_trips(text)
    });
    fuzz("protocol decoder (any text)", nasty_text(), |text| {
        round_trips(text)
    });
}

/// Whatever parses is re-encoded and parses to the same message.
fn round_trips(text: &str) -> Result<(), String> {
    if let Ok(message) = parse_client_message(text) {
        let again = serde_json::to_string(&message).map_err(|e| e.to_string())?;
        let reparsed = parse_client_message(&again).map_err(|_| "re-encoded message refused")?;
        if reparsed != message {
            return Err(format!("round trip changed it: {again}"));
        }
    }
    Ok(())
}

#[test]
fn meeting_codes() {
    fuzz("meeting code shape (any text)", nasty_text(), |text| {
        // A code is 26 symbols of a 32-letter alphabet; nothing else is.
        let shaped = app::meetings::ssr::is_code_shaped(text);
        let expected = text.len() == 26
            && text
                .bytes()
                .all(|b| b"abcdefghijkmnpqrstuvwxyz23456789".contains(&b));
        (shaped == expected)
            .then_some(())
            .ok_or_else(|| format!("is_code_shaped said {shaped}"))
    });
    fuzz("meeting code generator", Just(()), |_| {
        let code = app::meetings::ssr::new_code();
        app::meetings::ssr::is_code_shaped(&code)
            .then_some(())
            .ok_or_else(|| format!("a new code is not code-shaped: {code}"))
    });
}

#[test]
fn chat_text_cleaning() {
    fuzz("chat text cleaning", nasty_text(), |raw| {
        let clean = app::validate::chat_text(raw);
        if let Some(c) = clean.chars().find(|c| {
            (c.is_control() && *c != '\n' && *c != '\t') || app::validate::is_hidden_control(*c)
        }) {
            return Err(format!("{c:?} survived"));
        }
        if clean
            .chars()
            .any(|c| app::validate::is_line_break(c) && c != '\n')
        {
            return Err("a line break other than \\n survived".into());
        }
        if app::validate::chat_text(&clean) != clean {
            return Err("cleaning twice changes the text".into());
        }
        Ok(())
    });
}

fn message(sender: String, text: String, to: Option<String>) -> ChatMessage {
    ChatMessage {
        seq: 1,
        sender_id: "p1".into(),
        sender_name: sender,
        key: "k".into(),
        text,
        sent_at_ms: 0,
        to_id: to.as_ref().map(|_| "p2".to_string()),
        to_name: to,
    }
}

/// Chat messages from hostile sender names and texts, some private (to a
/// hostile recipient name).
fn messages() -> impl Strategy<Value = Vec<ChatMessage>> {
    prop::collection::vec(
        (nasty_text(), nasty_text(), prop::option::of(nasty_text()))
            .prop_map(|(sender, text, to)| message(sender, text, to)),
        0..8,
    )
}

#[test]
fn transcript_writers() {
    fuzz(
        "transcript .txt",
        (nasty_text(), messages()),
        |(title, list)| {
            let text =
                moim_server::transcript::render_transcript(title, list, false, |_| "t".into());
            // The title, a blank line, then one line per message: a message
            // cannot forge lines.
            let lines = text.lines().count();
            (lines == 2 + list.len())
                .then_some(())
                .ok_or_else(|| format!("{lines} lines for {} messages:\n{text}", list.len()))
        },
    );
    fuzz(
        "transcript .md",
        (nasty_text(), messages()),
        |(title, list)| {
            let text =
                moim_server::transcript::render_transcript(title, list, true, |_| "t".into());
            // Every message line is quoted: nothing a person typed starts a
            // Markdown block of its own.
            let mut in_header = true;
            for line in text.lines() {
                if in_header {
                    in_header = !line.is_empty();
                    continue;
                }
                let allowed = line.is_empty() || line.starts_with("> ") || line.starts_with("**");
                if !allowed {
                    return Err(format!("unquoted line {line:?}"));
                }
            }
            Ok(())
        },
    );
}

#[test]
fn calendar_writer() {
    fuzz(
        "calendar .ics",
        (nasty_text(), nasty_text(), nasty_text()),
        |(title, description, host)| {
            let row = app::meetings::ssr::MeetingRow {
                id: "m1".into(),
                code: "abcdefghijkmnpqrstuvwxyz23".into(),
                host_id: "u1".into(),
                host_name: host.clone(),
                title: title.clone(),
                description: description.clone(),
                starts_at: 1_800_000_000_000,
                duration_minutes: 45,
                waiting_room: 1,
                allow_guests: 0,
                max_participants: 6,
                revision: 1,
                cancelled_at: None,
                updated_at: 1_800_000_000_000,
                ended_at: None,
                media_mode: "automatic".into(),
            };
            let file = app::calendar::ics(&row, "https://moim.example");
            let bytes = file.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'\r' && bytes.get(i + 1) != Some(&b'\n') {
                    return Err("bare CR".into());
                }
                if *b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
                    return Err("bare LF".into());
                }
            }
            if file.split("\r\n").any(|line| line.len() > 75) {
                return Err("a line longer than 75 octets".into());
            }
            // An independent parser reads one event with its organizer.
            let mut parser = ical::IcalParser::new(std::io::BufReader::new(bytes));
            let calendar = match parser.next() {
                Some(Ok(calendar)) => calendar,
                other => return Err(format!("not parsable: {other:?}")),
            };
            if calendar.events.len() != 1 {
                return Err(format!("{} events", calendar.events.len()));
            }
            let organizer = calendar.events[0]
                .properties
                .iter()
                .any(|p| p.name == "ORGANIZER");
            organizer
                .then_some(())
                .ok_or_else(|| "ORGANIZER lost".into())
        },
    );
}

/// Form parsing of every server function, on a live server: arbitrary
/// bodies never crash it nor produce a 500.
#[test]
fn server_function_forms() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(common::spawn_app(common::Backend::Sqlite));
    let (client, _) = app.client_with_jar();
    runtime.block_on(async {
        let response = app
            .call(
                &client,
                "sign_up",
                &[
                    ("username", "fuzzer"),
                    ("display_name", "Fuzzer"),
                    ("email", ""),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(response.status(), 200);
    });
    let endpoints = prop::sample::select(
        leptos::server_fn::axum::server_fn_paths()
            .map(|(path, _)| path.to_string())
            // Signing out or changing the password would end the session
            // the other calls need; they get their own bodies all the same.
            .collect::<Vec<_>>(),
    );
    let field = prop::sample::select(vec![
        "code",
        "title",
        "instant",
        "starts_at_ms",
        "duration_minutes",
        "invitees",
        "display_name",
        "username",
        "password",
        "participant_id",
        "decision",
        "cohosts",
        "max_participants",
        "waiting_room",
        "next",
        "email",
        "current_password",
    ]);
    let body = prop::collection::vec((field, nasty_text()), 0..6);
    let raw = prop::collection::vec(any::<u8>(), 0..200);
    let strategy = (
        endpoints,
        prop_oneof![
            body.prop_map(|fields| {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (name, value) in fields {
                    form.append_pair(name, &value);
                }
                form.finish()
            }),
            raw.prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        ],
    );
    fuzz("server function forms", strategy, |(path, body)| {
        let status = runtime.block_on(async {
            client
                .post(app.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        match status {
            Ok(500..) => Err(format!("{path} answered a server error")),
            Ok(_) => Ok(()),
            Err(err) => Err(format!("{path}: {err}")),
        }
    });
    runtime.block_on(async {
        let health = client.get(app.url("/healthz")).send().await.expect("alive");
        assert_eq!(health.status(), 200);
    });
    drop(app);
}

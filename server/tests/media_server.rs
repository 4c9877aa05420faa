//! The built-in media server as the signaling side sees it: a room whose
//! media goes through the server answers a browser's offer itself (ICE-lite,
//! one UDP address for everyone), offers each participant the others'
//! tracks under names that tell whose they are, and refuses media-server
//! signals in a room whose media is direct. Real media (DTLS, SRTP, RTP
//! forwarding) is exercised in Chromium by end2end/tests/sfu.spec.ts.

mod common;

use app::protocol::media_server::media_client_id;
use app::protocol::{ClientMessage, ErrorCode, MediaPath, ServerMessage, Signal};
use common::people::{enter, instant_meeting, join_call, person};
use common::ws::Ws;
use common::{spawn_with, Backend, Spawn};
use std::time::Duration;

/// What Chromium offers with a microphone: one send-only Opus m-line.
fn browser_offer(ufrag: &str, ssrc: u32) -> Signal {
    let fingerprint = (0..32)
        .map(|i| format!("{:02X}", (i * 7 + 3) % 256))
        .collect::<Vec<_>>()
        .join(":");
    let sdp = [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS mic",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        &format!("a=ice-ufrag:{ufrag}"),
        "a=ice-pwd:q8Yk0bXbXWZK3l4mVvD1Zr0M",
        "a=ice-options:trickle",
        &format!("a=fingerprint:sha-256 {fingerprint}"),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendonly",
        "a=msid:mic track",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        &format!("a=ssrc:{ssrc} cname:moimtest"),
        &format!("a=ssrc:{ssrc} msid:mic track"),
        "",
    ]
    .join("\r\n");
    Signal::Description {
        sdp_type: "offer".into(),
        sdp,
    }
}

/// The media server's refusal of the last signal.
fn assert_media_refused(message: &ServerMessage) {
    assert!(
        matches!(
            message,
            ServerMessage::Error {
                code: ErrorCode::MediaRefused,
                ..
            }
        ),
        "{message:?}"
    );
}

/// An instance that sends every call through its media server.
async fn media_server_app() -> common::TestApp {
    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = ["--media-mode", "sfu", "--sfu-udp-listen", "127.0.0.1:0"]
        .map(String::from)
        .to_vec();
    spawn_with(spawn).await
}

async fn next_media_signal(ws: &mut Ws) -> (String, String) {
    let message = ws
        .recv_within(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::MediaServerSignal { .. })
        })
        .await;
    match message {
        ServerMessage::MediaServerSignal {
            signal: Signal::Description { sdp_type, sdp },
        } => (sdp_type, sdp),
        other => panic!("expected a session description, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_server_answers_and_offers_each_the_others_tracks() {
    let app = media_server_app().await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    enter(&app, &ann, &code, "").await;
    enter(&app, &bob, &code, "").await;
    let (mut ann_ws, ann_peer, welcome) = join_call(&app, &ann, &code, None).await;
    let ServerMessage::Welcome {
        media_path,
        max_participants,
        ..
    } = welcome
    else {
        unreachable!()
    };
    assert_eq!(media_path, MediaPath::Server);
    // The media server's limit, not the mesh's 6 (the meeting allows 50).
    assert_eq!(max_participants, 50);

    ann_ws
        .send(&ClientMessage::MediaServerSignal {
            signal: browser_offer("annA", 1111),
        })
        .await;
    let (kind, answer) = next_media_signal(&mut ann_ws).await;
    assert_eq!(kind, "answer");
    assert!(answer.contains("a=ice-lite"), "ICE-lite answer:\n{answer}");
    // One host candidate: the media server's UDP address.
    let candidates: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(
        candidates
            .iter()
            .any(|c| c.contains("127.0.0.1") && c.contains("typ host")),
        "{candidates:?}"
    );

    let (mut bob_ws, _bob_peer, _) = join_call(&app, &bob, &code, None).await;
    bob_ws
        .send(&ClientMessage::MediaServerSignal {
            signal: browser_offer("bobB", 2222),
        })
        .await;
    let (kind, _) = next_media_signal(&mut bob_ws).await;
    assert_eq!(kind, "answer");
    // Then the server offers Bob Ann's microphone, named after Ann.
    let (kind, offer) = next_media_signal(&mut bob_ws).await;
    assert_eq!(kind, "offer");
    let ann_stream = format!("peer-{}-", media_client_id(&ann_peer.peer_id));
    assert!(
        offer
            .lines()
            .any(|l| l.starts_with("a=msid:") && l.contains(&ann_stream)),
        "Bob's offer names Ann's stream {ann_stream}:\n{offer}"
    );
    assert!(offer.contains("a=sendonly"), "{offer}");
}

/// A browser's offer with `tracks` microphones, one m-line each: the size
/// of a page's descriptions in a large call.
fn browser_offer_with_tracks(ufrag: &str, tracks: u32) -> Signal {
    let Signal::Description { sdp, .. } = browser_offer(ufrag, 1) else {
        unreachable!()
    };
    let (session, first) = sdp.split_once("m=audio").expect("one m-line");
    let mids: Vec<String> = (0..tracks).map(|m| m.to_string()).collect();
    let mut out = session.replace(
        "a=group:BUNDLE 0",
        &format!("a=group:BUNDLE {}", mids.join(" ")),
    );
    for mid in 0..tracks {
        let ssrc = 10_000 + mid;
        out.push_str(
            &format!("m=audio{first}")
                .replace("a=mid:0", &format!("a=mid:{mid}"))
                .replace("mic track", &format!("mic track{mid}"))
                .replace("a=ssrc:1 ", &format!("a=ssrc:{ssrc} ")),
        );
    }
    Signal::Description {
        sdp_type: "offer".into(),
        sdp: out,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_calls_session_descriptions_pass_the_ordinary_frame_limit() {
    let app = media_server_app().await;
    let ann = person(&app, "ann").await;
    let code = instant_meeting(&app, &ann, "", &[]).await;
    enter(&app, &ann, &code, "").await;
    let (mut ws, _, _) = join_call(&app, &ann, &code, None).await;
    // 200 m-lines, as a page receiving a hundred people's cameras and
    // microphones has: well over the 64 KiB of an ordinary message.
    let offer = ClientMessage::MediaServerSignal {
        signal: browser_offer_with_tracks("annBig", 200),
    };
    let frame = serde_json::to_string(&offer).unwrap();
    assert!(
        frame.len() > app::protocol::MAX_MESSAGE_BYTES,
        "{}",
        frame.len()
    );
    ws.send(&offer).await;
    let (sdp_type, answer) = next_media_signal(&mut ws).await;
    assert_eq!(sdp_type, "answer");
    assert_eq!(
        answer.matches("m=audio").count(),
        200,
        "the answer takes every track"
    );
    // The connection carries on.
    ws.send(&ClientMessage::Ping).await;
    ws.recv_within(Duration::from_secs(5), |m| matches!(m, ServerMessage::Pong))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_room_refuses_media_server_signals() {
    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = ["--media-mode", "mesh"].map(String::from).to_vec();
    let app = spawn_with(spawn).await;
    let ann = person(&app, "ann").await;
    let code = instant_meeting(&app, &ann, "", &[]).await;
    enter(&app, &ann, &code, "").await;
    let (mut ws, _, welcome) = join_call(&app, &ann, &code, None).await;
    assert!(matches!(
        welcome,
        ServerMessage::Welcome {
            media_path: MediaPath::Direct,
            ..
        }
    ));
    ws.send(&ClientMessage::MediaServerSignal {
        signal: browser_offer("annA", 1111),
    })
    .await;
    let refused = ws
        .recv_within(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::Error { .. })
        })
        .await;
    assert_media_refused(&refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_media_server_signals_hurt_nobody() {
    let app = media_server_app().await;
    let ann = person(&app, "ann").await;
    let code = instant_meeting(&app, &ann, "", &[]).await;
    enter(&app, &ann, &code, "").await;
    let (mut ws, _, _) = join_call(&app, &ann, &code, None).await;
    let many_lines = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n".repeat(500);
    let nasty = [
        Signal::Description {
            sdp_type: "offer".into(),
            sdp: "not sdp at all".into(),
        },
        Signal::Description {
            sdp_type: "answer".into(),
            sdp: "v=0\r\n".into(),
        },
        Signal::Description {
            sdp_type: "rollback".into(),
            sdp: String::new(),
        },
        Signal::Description {
            sdp_type: "offer".into(),
            sdp: format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{many_lines}"),
        },
        Signal::Candidate {
            candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
        },
        browser_offer("", 0),
    ];
    for signal in nasty {
        ws.send(&ClientMessage::MediaServerSignal { signal }).await;
    }
    // What could not be read is answered with an error, not silence.
    let refused = ws
        .recv_within(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::Error { .. })
        })
        .await;
    assert_media_refused(&refused);
    // The connection (and the media server) still work: a good offer is
    // answered.
    ws.send(&ClientMessage::MediaServerSignal {
        signal: browser_offer("annC", 3333),
    })
    .await;
    let answered = ws
        .recv_within(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::MediaServerSignal { signal: Signal::Description { sdp_type, .. } } if sdp_type == "answer")
        })
        .await;
    assert!(matches!(answered, ServerMessage::MediaServerSignal { .. }));
    ws.send(&ClientMessage::Ping).await;
    ws.recv_within(Duration::from_secs(5), |m| matches!(m, ServerMessage::Pong))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_through_the_media_server_has_the_media_servers_limit() {
    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = [
        "--mesh-max-participants",
        "2",
        "--sfu-max-participants",
        "3",
        "--sfu-udp-listen",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    let app = spawn_with(spawn).await;
    let people = [
        person(&app, "ann").await,
        person(&app, "bob").await,
        person(&app, "cat").await,
        person(&app, "dan").await,
    ];
    // Set to "media server always" on the form: three may come, not two.
    let code = instant_meeting(&app, &people[0], "bob,cat,dan", &[("media_mode", "server")]).await;
    let mut sockets = Vec::new();
    for who in &people[..3] {
        enter(&app, who, &code, "").await;
        let (ws, _, welcome) = join_call(&app, who, &code, None).await;
        assert!(matches!(
            welcome,
            ServerMessage::Welcome {
                media_path: MediaPath::Server,
                max_participants: 3,
                ..
            }
        ));
        sockets.push(ws);
    }
    enter(&app, &people[3], &code, "").await;
    let mut late = common::ws::open(&app, &people[3].jar, &code).await.open();
    late.send(&common::ws::join_message(None)).await;
    let refused = late.recv().await;
    assert!(
        matches!(
            refused,
            ServerMessage::Error {
                code: ErrorCode::RoomFull,
                ..
            }
        ),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_setting_is_checked_and_kept() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let ann = person(&app, "ann").await;
    let bad = app
        .call(
            &ann.client,
            "schedule_meeting",
            &[("title", "T"), ("instant", "1"), ("media_mode", "sfu")],
        )
        .await;
    assert_eq!(bad.status(), 422);
    let body = bad.text().await.unwrap_or_default();
    assert!(body.contains("media_mode"), "{body}");

    let code = instant_meeting(&app, &ann, "", &[("media_mode", "direct")]).await;
    let row = app::meetings::ssr::find_live_by_code(&app.state.db, &code)
        .await
        .expect("read")
        .expect("the meeting");
    assert_eq!(row.media_mode(), app::protocol::meetings::MediaMode::Direct);
    // Left out (an older page, an API call): automatic.
    let code = instant_meeting(&app, &ann, "", &[]).await;
    let row = app::meetings::ssr::find_live_by_code(&app.state.db, &code)
        .await
        .expect("read")
        .expect("the meeting");
    assert_eq!(
        row.media_mode(),
        app::protocol::meetings::MediaMode::Automatic
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_may_publish_under_someone_elses_stream() {
    let app = media_server_app().await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    enter(&app, &ann, &code, "").await;
    enter(&app, &bob, &code, "").await;
    let (mut ann_ws, _, _) = join_call(&app, &ann, &code, None).await;
    ann_ws
        .send(&ClientMessage::MediaServerSignal {
            signal: browser_offer("annA", 4444),
        })
        .await;
    assert_eq!(next_media_signal(&mut ann_ws).await.0, "answer");

    // Bob announces Ann's SSRC: his offer is refused, Ann keeps hers.
    let (mut bob_ws, _, _) = join_call(&app, &bob, &code, None).await;
    bob_ws
        .send(&ClientMessage::MediaServerSignal {
            signal: browser_offer("bobB", 4444),
        })
        .await;
    let refused = bob_ws
        .recv_within(Duration::from_secs(10), |m| {
            matches!(
                m,
                ServerMessage::Error { .. } | ServerMessage::MediaServerSignal { .. }
            )
        })
        .await;
    assert_media_refused(&refused);
    // With a stream of his own he is answered.
    bob_ws
        .send(&ClientMessage::MediaServerSignal {
            signal: browser_offer("bobC", 5555),
        })
        .await;
    assert_eq!(next_media_signal(&mut bob_ws).await.0, "answer");
}

/// The welcome's media path.
fn welcome_path(welcome: &ServerMessage) -> MediaPath {
    match welcome {
        ServerMessage::Welcome { media_path, .. } => *media_path,
        other => panic!("not a welcome: {other:?}"),
    }
}

/// Every media-path change a connection hears within `wait`.
async fn path_changes(ws: &mut Ws, wait: Duration) -> Vec<MediaPath> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.try_recv(left).await {
            Some(ServerMessage::MediaPathChanged { path }) => changes.push(path),
            Some(_) => continue,
            None => return changes,
        }
    }
}

/// An automatic call whose people sit on two instances behind one Redis
/// moves as one: the arrival that makes it big enough moves everyone,
/// wherever their connection is, the room is told once, a later arrival on
/// the other instance is welcomed on the server path, and its media
/// reaches the media server of the instance that holds the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_two_instances_an_automatic_call_moves_to_the_media_server_as_one() {
    let redis = common::redis_server::RedisServer::start();
    let (one, two) = common::cluster(
        &redis,
        &["--sfu-switch-at", "3", "--sfu-udp-listen", "127.0.0.1:0"],
    )
    .await;
    let people = [
        person(&one, "ann").await,
        person(&one, "bob").await,
        person(&one, "cyd").await,
        person(&one, "dan").await,
    ];
    let code = instant_meeting(&one, &people[0], "bob,cyd,dan", &[]).await;
    for who in &people {
        enter(&one, who, &code, "").await;
    }
    let (mut ann, _, welcome) = join_call(&one, &people[0], &code, None).await;
    assert_eq!(welcome_path(&welcome), MediaPath::Direct);
    let (mut bob, _, welcome) = join_call(&two, &people[1], &code, None).await;
    assert_eq!(
        welcome_path(&welcome),
        MediaPath::Direct,
        "two people: direct"
    );

    // The third arrives on instance two: the call moves, for everyone.
    let (_cyd, _, welcome) = join_call(&two, &people[2], &code, None).await;
    assert_eq!(
        welcome_path(&welcome),
        MediaPath::Server,
        "the third arrival moves it"
    );
    let wait = Duration::from_secs(3);
    let (on_one, on_two) = tokio::join!(path_changes(&mut ann, wait), path_changes(&mut bob, wait));
    assert_eq!(
        on_one,
        [MediaPath::Server],
        "ann, on the other instance, is told once"
    );
    assert_eq!(on_two, [MediaPath::Server], "bob is told once");
    // One move, counted once, by the one instance that made it.
    let moves = [one.scrape_metrics().await, two.scrape_metrics().await].map(|text| {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(r#"moim_media_path_switches_total{media_path="server"} "#)
            })
            .map_or(0.0, |v| v.trim().parse::<f64>().expect("a number"))
    });
    assert_eq!(moves, [0.0, 1.0], "moves counted on instance one, two");

    // A fourth, on instance one, which saw none of the arrivals that moved
    // it: the room's path is the shared one.
    let (_dan, _, welcome) = join_call(&one, &people[3], &code, None).await;
    assert_eq!(welcome_path(&welcome), MediaPath::Server);

    // Media from either instance reaches the room's one media server.
    for (who, ws, ufrag, ssrc) in [
        ("ann", &mut ann, "annX", 7001),
        ("bob", &mut bob, "bobX", 7002),
    ] {
        ws.send(&ClientMessage::MediaServerSignal {
            signal: browser_offer(ufrag, ssrc),
        })
        .await;
        let answer = ws
            .recv_within(Duration::from_secs(10), |m| {
                matches!(
                    m,
                    ServerMessage::MediaServerSignal { signal: Signal::Description { sdp_type, .. } }
                        if sdp_type == "answer"
                ) || matches!(m, ServerMessage::Error { .. })
            })
            .await;
        assert!(
            matches!(answer, ServerMessage::MediaServerSignal { .. }),
            "{who}'s offer: {answer:?}"
        );
    }
    // Both on one instance's media server (its count is refreshed every
    // second or so), none on the other's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut counts;
    loop {
        counts = [
            common::metric(&one.scrape_metrics().await, "moim_sfu_clients"),
            common::metric(&two.scrape_metrics().await, "moim_sfu_clients"),
        ];
        if counts.contains(&2.0) || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    counts.sort_by(f64::total_cmp);
    assert_eq!(
        counts,
        [0.0, 2.0],
        "clients of each instance's media server"
    );
}

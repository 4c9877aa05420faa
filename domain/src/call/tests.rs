//! The call session driven input by input: no socket, no store, no sleep.
//! Each test plays the pump, answering the session's asks the way the
//! stores would.

use super::*;
use crate::meetings::MeetingRow;
use crate::rooms::bus::{RoomEvent, SharedEvent};
use crate::rooms::{JoinOutcome, PeerChange, RoomSettings};
use protocol::ice::IceConfig;
use protocol::{
    close, ClientMessage, ErrorCode, LeaveReason, MediaPath, MediaState, PeerId, PeerInfo,
    PeerRole, ServerMessage, Signal, PROTOCOL_VERSION,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FRESH: &str = "0000000000000000000000000000f1e5";
const OLD: &str = "0123456789abcdef0123456789abcdef";

fn caller(participant: &str, role: PeerRole) -> Caller {
    Caller {
        meeting: MeetingRow {
            id: "m1".into(),
            code: "code".into(),
            host_id: "ann".into(),
            host_name: "Ann".into(),
            title: "Review".into(),
            description: String::new(),
            starts_at: 0,
            duration_minutes: 30,
            waiting_room: 1,
            allow_guests: 0,
            max_participants: 4,
            revision: 1,
            cancelled_at: None,
            updated_at: 0,
            ended_at: None,
            media_mode: "automatic".into(),
        },
        participant_id: participant.into(),
        display_name: participant.to_uppercase(),
        role,
        may_use_turn: true,
    }
}

/// A clock the test moves by hand.
struct Clock {
    start: Instant,
    at: Duration,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            at: Duration::ZERO,
        }
    }

    fn now(&self) -> Now {
        Now {
            instant: self.start + self.at,
            wall_ms: 1_000_000 + self.at.as_millis() as i64,
        }
    }

    fn pass(&mut self, by: Duration) {
        self.at += by;
    }
}

struct Call {
    session: CallSession,
    clock: Clock,
}

impl Call {
    fn open(participant: &str, role: PeerRole) -> Self {
        let clock = Clock::new();
        let session = CallSession::new(
            caller(participant, role),
            RoomSettings::default(),
            "conn-1".into(),
            FRESH.into(),
            clock.now(),
        );
        Self { session, clock }
    }

    fn input(&mut self, input: Input) -> Vec<Effect> {
        self.session.handle(input, self.clock.now())
    }

    fn send(&mut self, message: &ClientMessage) -> Vec<Effect> {
        let text = serde_json::to_string(message).expect("a client message encodes");
        self.input(Input::Frame(Frame::Text(text)))
    }

    fn answer(&mut self, answer: Answer) -> Vec<Effect> {
        self.input(Input::Answer(answer))
    }

    fn event(&mut self, event: RoomEvent) -> Vec<Effect> {
        self.input(Input::Event(Arc::new(event.into())))
    }

    fn join(&mut self, resume: Option<&str>) -> Vec<Effect> {
        self.send(&ClientMessage::Join {
            version: PROTOCOL_VERSION,
            resume: resume.map(PeerId::from),
            media: media(true),
        })
    }

    fn admit(&mut self, purpose: Purpose) -> Vec<Effect> {
        let now = self.session.caller().clone();
        self.answer(Answer::Rights(purpose, Rights::Admitted(Box::new(now))))
    }

    /// Joins afresh into a room where `others` are, up to the welcome.
    fn joined_with(participant: &str, role: PeerRole, others: Vec<PeerInfo>) -> Self {
        let mut call = Self::open(participant, role);
        call.join(None);
        call.admit(Purpose::AtJoin);
        call.answer(Answer::Joined(Some(JoinOutcome::Joined {
            displaced: vec![],
        })));
        let mut peers = others;
        peers.extend(call.session.peer().cloned());
        let welcome = call.answer(Answer::Roster {
            peers,
            chat_head: 0,
            ice: ice(),
            media_path: protocol::MediaPath::Direct,
        });
        assert!(matches!(
            welcome[..],
            [Effect::Send(ServerMessage::Welcome { .. })]
        ));
        assert!(call.session.is_live());
        call
    }
}

fn media(mic: bool) -> MediaState {
    MediaState {
        mic,
        cam: true,
        screen: false,
        hand: false,
    }
}

fn ice() -> IceConfig {
    IceConfig {
        ice_servers: vec![],
        expires_at_ms: None,
        relay_only: false,
    }
}

fn peer(peer_id: &str, participant: &str, role: PeerRole) -> PeerInfo {
    PeerInfo {
        peer_id: peer_id.into(),
        participant_id: participant.into(),
        display_name: participant.into(),
        role,
        media: media(true),
        joined_at_ms: 0,
        hand_raised_at_ms: None,
    }
}

fn sent(effects: &[Effect]) -> Vec<&ServerMessage> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Send(message) => Some(message),
            Effect::SendShared(shared) => shared.message(),
            _ => None,
        })
        .collect()
}

fn error_code(effects: &[Effect]) -> Option<ErrorCode> {
    sent(effects).into_iter().find_map(|message| match message {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    })
}

fn close_code(effects: &[Effect]) -> Option<u16> {
    effects.iter().find_map(|effect| match effect {
        Effect::Close { code, .. } => Some(*code),
        _ => None,
    })
}

fn asks(effects: &[Effect]) -> Vec<&Ask> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Ask(ask) => Some(ask),
            _ => None,
        })
        .collect()
}

fn holds(effects: &[Effect]) -> bool {
    effects
        .iter()
        .any(|effect| matches!(effect, Effect::HoldForResume { .. }))
}

#[test]
fn join_checks_rights_then_enters_under_a_fresh_id_and_welcomes() {
    let mut call = Call::open("bob", PeerRole::Member);
    let asked = call.join(None);
    assert_eq!(asks(&asked), vec![&Ask::Rights(Purpose::AtJoin)]);

    let asked = call.admit(Purpose::AtJoin);
    let [Ask::Join { entry, limit }] = asks(&asked)[..] else {
        panic!("expected a join, got {asked:?}");
    };
    assert_eq!(entry.peer.peer_id, FRESH);
    assert_eq!(entry.peer.participant_id, "bob");
    assert_eq!(entry.peer.media, media(true));
    assert_eq!(entry.conn_id, "conn-1");
    // The meeting's own limit (4) within the server's (6).
    assert_eq!(*limit, 4);
    assert!(entry.expires_at_ms > call.clock.now().wall_ms);

    let entered = call.answer(Answer::Joined(Some(JoinOutcome::Joined {
        displaced: vec![],
    })));
    assert!(entered.contains(&Effect::Publish(RoomEvent::Broadcast {
        skip: Some(FRESH.into()),
        message: ServerMessage::PeerJoined {
            peer: entry.peer.clone()
        },
    })));
    assert_eq!(asks(&entered), vec![&Ask::Roster { with_turn: true }]);
    assert!(!call.session.is_live());

    let others = vec![peer("p-ann", "ann", PeerRole::Host), entry.peer.clone()];
    let welcome = call.answer(Answer::Roster {
        peers: others,
        chat_head: 7,
        ice: ice(),
        media_path: protocol::MediaPath::Direct,
    });
    match sent(&welcome)[..] {
        [ServerMessage::Welcome {
            you,
            peers,
            resumed,
            max_participants,
            chat_head,
            ..
        }] => {
            assert_eq!(you.peer_id, FRESH);
            // The welcome lists the others, not the joiner.
            assert_eq!(peers.len(), 1);
            assert_eq!(peers[0].peer_id, "p-ann");
            assert!(!resumed);
            assert_eq!(*max_participants, 4);
            assert_eq!(*chat_head, 7);
        }
        _ => panic!("expected a welcome, got {welcome:?}"),
    }
    assert!(call.session.is_live());
}

#[test]
fn before_join_only_join_is_taken_and_a_wrong_version_is_refused() {
    let mut call = Call::open("bob", PeerRole::Member);
    let refused = call.send(&ClientMessage::Ping);
    assert_eq!(error_code(&refused), Some(ErrorCode::NotJoined));
    assert!(call.session.is_waiting_for_join());

    let old = call.send(&ClientMessage::Join {
        version: PROTOCOL_VERSION + 1,
        resume: None,
        media: media(true),
    });
    assert_eq!(error_code(&old), Some(ErrorCode::VersionUnsupported));
    assert_eq!(close_code(&old), Some(close::VERSION));
    assert!(call.session.is_over());
}

#[test]
fn no_join_in_time_closes() {
    let mut call = Call::open("bob", PeerRole::Member);
    let closed = call.input(Input::Timer(Timer::JoinDeadline));
    assert_eq!(close_code(&closed), Some(close::NOT_ADMITTED));
    assert!(call.session.is_over());
    // Once over, nothing more happens.
    assert!(call.send(&ClientMessage::Ping).is_empty());
}

#[test]
fn a_join_with_withdrawn_rights_is_told_why() {
    let mut call = Call::open("bob", PeerRole::Member);
    call.join(None);
    let refused = call.answer(Answer::Rights(Purpose::AtJoin, Rights::NotAdmitted));
    assert_eq!(close_code(&refused), Some(close::NOT_ADMITTED));
    assert!(asks(&refused).is_empty());
    assert!(call.session.is_over());
}

#[test]
fn a_resume_takes_the_old_presence_over_and_brings_the_page_state() {
    let mut call = Call::open("bob", PeerRole::CoHost);
    call.join(Some(OLD));
    let asked = call.admit(Purpose::AtJoin);
    assert!(matches!(
        asks(&asked)[..],
        [Ask::Resume { peer_id, conn_id, .. }] if peer_id == OLD && conn_id == "conn-1"
    ));
    // Stored: a member with the microphone off; the page has it on and is
    // a co-host now.
    let mut stored = peer(OLD, "bob", PeerRole::Member);
    stored.media = media(false);
    let resumed = call.answer(Answer::Resumed(Some(stored.clone())));
    assert!(resumed.contains(&Effect::Publish(RoomEvent::Takeover {
        peer_id: OLD.into(),
        conn_id: "conn-1".into(),
    })));
    let [Ask::Update {
        peer_id,
        changes,
        why,
    }] = asks(&resumed)[..]
    else {
        panic!("expected an update, got {resumed:?}");
    };
    assert_eq!(peer_id, OLD);
    assert_eq!(*why, Change::Resume);
    assert_eq!(
        changes,
        &vec![
            PeerChange::Media(media(true)),
            PeerChange::Role(PeerRole::CoHost)
        ]
    );
    let mut now = stored;
    now.media = media(true);
    now.role = PeerRole::CoHost;
    // The store tells the others with the change (one step), so the
    // session publishes nothing of its own once it was stored.
    assert_eq!(
        why.announce().event(&now),
        RoomEvent::Broadcast {
            skip: Some(OLD.into()),
            message: ServerMessage::PeerUpdated { peer: now.clone() },
        }
    );
    let updated = call.answer(Answer::Updated(Change::Resume, Ok(Some(now.clone()))));
    assert!(
        !updated.iter().any(|e| matches!(e, Effect::Publish(_))),
        "{updated:?}"
    );
    let welcome = call.answer(Answer::Roster {
        peers: vec![now],
        chat_head: 0,
        ice: ice(),
        media_path: protocol::MediaPath::Direct,
    });
    assert!(matches!(
        sent(&welcome)[..],
        [ServerMessage::Welcome { resumed: true, you, .. }] if you.peer_id == OLD && you.role == PeerRole::CoHost
    ));
}

#[test]
fn a_lost_presence_keeps_its_id_only_when_nobody_holds_it() {
    let mut call = Call::open("bob", PeerRole::Member);
    call.join(Some(OLD));
    call.admit(Purpose::AtJoin);
    let asked = call.answer(Answer::Resumed(None));
    assert_eq!(
        asks(&asked),
        vec![&Ask::Held {
            peer_id: OLD.into()
        }]
    );
    let free = call.answer(Answer::Held(false));
    assert!(matches!(asks(&free)[..], [Ask::Join { entry, .. }] if entry.peer.peer_id == OLD));

    let mut taken = Call::open("bob", PeerRole::Member);
    taken.join(Some(OLD));
    taken.admit(Purpose::AtJoin);
    taken.answer(Answer::Resumed(None));
    let held = taken.answer(Answer::Held(true));
    assert!(matches!(asks(&held)[..], [Ask::Join { entry, .. }] if entry.peer.peer_id == FRESH));

    // A malformed id is never reused nor even looked up.
    let mut odd = Call::open("bob", PeerRole::Member);
    odd.join(Some("../../etc"));
    odd.admit(Purpose::AtJoin);
    let asked = odd.answer(Answer::Resumed(None));
    assert!(matches!(asks(&asked)[..], [Ask::Join { entry, .. }] if entry.peer.peer_id == FRESH));
}

#[test]
fn a_room_broadcast_is_sent_as_the_shared_event_not_a_copy() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let shared = Arc::new(SharedEvent::new(RoomEvent::to_others(
        "p-other",
        ServerMessage::PeerLeft {
            peer_id: "p-other".into(),
            reason: LeaveReason::Left,
        },
    )));
    let effects = call.input(Input::Event(shared.clone()));
    assert!(
        matches!(&effects[..], [Effect::SendShared(sent)] if Arc::ptr_eq(sent, &shared)),
        "{effects:?}"
    );
}

#[test]
fn a_second_tab_replaces_the_first_and_the_first_lets_go() {
    // The new connection: its join displaced an older presence.
    let mut newer = Call::open("bob", PeerRole::Member);
    newer.join(None);
    newer.admit(Purpose::AtJoin);
    let older = peer(OLD, "bob", PeerRole::Member);
    let entered = newer.answer(Answer::Joined(Some(JoinOutcome::Joined {
        displaced: vec![older],
    })));
    assert!(entered.contains(&Effect::Publish(RoomEvent::Broadcast {
        skip: Some(OLD.into()),
        message: ServerMessage::PeerLeft {
            peer_id: OLD.into(),
            reason: LeaveReason::Replaced,
        },
    })));
    assert!(entered.contains(&Effect::Publish(RoomEvent::Takeover {
        peer_id: OLD.into(),
        conn_id: "conn-1".into(),
    })));

    // The old connection hears the takeover and closes without holding.
    let mut old = Call::joined_with("bob", PeerRole::Member, vec![]);
    let me = old.session.peer().expect("joined").peer_id.clone();
    let own = old.event(RoomEvent::Takeover {
        peer_id: me.clone(),
        conn_id: "conn-1".into(),
    });
    assert!(own.is_empty(), "its own takeover is not a replacement");
    let replaced = old.event(RoomEvent::Takeover {
        peer_id: me,
        conn_id: "conn-2".into(),
    });
    assert_eq!(close_code(&replaced), Some(close::REPLACED));
    assert!(!holds(&replaced));
    assert!(old.session.is_over());
}

#[test]
fn a_full_room_refuses_with_its_limit_and_a_failed_store_asks_to_retry() {
    let mut call = Call::open("bob", PeerRole::Member);
    call.join(None);
    call.admit(Purpose::AtJoin);
    let full = call.answer(Answer::Joined(Some(JoinOutcome::Full)));
    assert_eq!(error_code(&full), Some(ErrorCode::RoomFull));
    assert!(matches!(
        sent(&full)[..],
        [ServerMessage::Error { message, .. }] if message.contains("4 people")
    ));
    assert_eq!(close_code(&full), Some(close::FULL));
    assert!(!holds(&full));
    assert!(call.session.is_over());

    let mut broken = Call::open("bob", PeerRole::Member);
    broken.join(None);
    broken.admit(Purpose::AtJoin);
    let failed = broken.answer(Answer::Joined(None));
    assert_eq!(error_code(&failed), Some(ErrorCode::Internal));
    assert_eq!(close_code(&failed), Some(close::INTERNAL));
}

#[test]
fn hosts_are_never_kept_out_of_their_own_meeting() {
    let mut call = Call::open("ann", PeerRole::Host);
    call.join(None);
    let asked = call.admit(Purpose::AtJoin);
    assert!(matches!(asks(&asked)[..], [Ask::Join { limit, .. }] if *limit == usize::MAX));
}

#[test]
fn removal_takes_the_presence_away_and_tells_the_page() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let me = call.session.peer().expect("joined").peer_id.clone();
    assert!(call
        .event(RoomEvent::Removed {
            participant_id: "eve".into()
        })
        .is_empty());
    let removed = call.event(RoomEvent::Removed {
        participant_id: "bob".into(),
    });
    assert!(removed.contains(&Effect::RemovePresence {
        peer_id: me,
        announce: Some(LeaveReason::Removed),
    }));
    assert_eq!(sent(&removed), vec![&ServerMessage::Removed]);
    assert_eq!(close_code(&removed), Some(close::REMOVED));
    assert!(call.session.is_over());
}

#[test]
fn a_removal_before_join_closes_too() {
    let mut call = Call::open("bob", PeerRole::Member);
    let removed = call.event(RoomEvent::Removed {
        participant_id: "bob".into(),
    });
    assert_eq!(close_code(&removed), Some(close::REMOVED));
    assert!(call.session.is_over());
}

#[test]
fn a_host_removes_someone_after_the_rights_are_read_again() {
    let mut call = Call::joined_with("ann", PeerRole::Host, vec![]);
    let asked = call.send(&ClientMessage::Remove {
        peer: "p-bob".into(),
    });
    let [Ask::Rights(Purpose::HostAction(_))] = asks(&asked)[..] else {
        panic!("expected a rights check, got {asked:?}");
    };
    let asked = call.admit(Purpose::HostAction(ClientMessage::Remove {
        peer: "p-bob".into(),
    }));
    assert_eq!(
        asks(&asked),
        vec![&Ask::Find {
            peer_id: "p-bob".into()
        }]
    );
    let asked = call.answer(Answer::Found {
        peer_id: "p-bob".into(),
        peer: Some(peer("p-bob", "bob", PeerRole::Member)),
    });
    assert_eq!(
        asks(&asked),
        vec![&Ask::RemoveParticipant {
            peer_id: "p-bob".into(),
            participant_id: "bob".into()
        }]
    );
    let done = call.answer(Answer::Removal {
        peer_id: "p-bob".into(),
        result: RemovalAnswer::Done,
    });
    assert_eq!(
        done,
        vec![Effect::RemovePresence {
            peer_id: "p-bob".into(),
            announce: Some(LeaveReason::Removed)
        }]
    );
    let host = call.answer(Answer::Removal {
        peer_id: "p-ann".into(),
        result: RemovalAnswer::Host,
    });
    assert_eq!(error_code(&host), Some(ErrorCode::Forbidden));
    let nobody = call.answer(Answer::Found {
        peer_id: "p-x".into(),
        peer: None,
    });
    assert_eq!(error_code(&nobody), Some(ErrorCode::UnknownPeer));
    assert!(call.session.is_live());
}

#[test]
fn host_actions_are_refused_to_members_and_to_demoted_hosts() {
    let end = ClientMessage::EndMeeting;
    let mut member = Call::joined_with("bob", PeerRole::Member, vec![]);
    member.send(&end);
    let refused = member.admit(Purpose::HostAction(end.clone()));
    assert_eq!(error_code(&refused), Some(ErrorCode::Forbidden));
    assert!(asks(&refused).is_empty());

    // A co-host demoted since the connection opened: the role is stored
    // and shown, and the action refused.
    let mut demoted = Call::joined_with("cy", PeerRole::CoHost, vec![]);
    demoted.send(&end);
    let mut now = caller("cy", PeerRole::Member);
    now.may_use_turn = true;
    let refused = demoted.answer(Answer::Rights(
        Purpose::HostAction(end.clone()),
        Rights::Admitted(Box::new(now)),
    ));
    assert_eq!(error_code(&refused), Some(ErrorCode::Forbidden));
    assert!(matches!(
        asks(&refused)[..],
        [Ask::Update { why: Change::Role, changes, .. }] if changes == &vec![PeerChange::Role(PeerRole::Member)]
    ));
    // Not stored (gone meanwhile): the session tells everyone itself, the
    // person's own page included.
    let shown = demoted.answer(Answer::Updated(Change::Role, Ok(None)));
    assert!(matches!(
        &shown[..],
        [Effect::Publish(RoomEvent::Broadcast { skip: None, message: ServerMessage::PeerUpdated { peer } })] if peer.role == PeerRole::Member
    ));
    // Stored: the store told everyone with it.
    assert_eq!(Change::Role.announce(), crate::rooms::Announce::Everyone);
    let stored = demoted.session.peer().expect("joined").clone();
    assert!(demoted
        .answer(Answer::Updated(Change::Role, Ok(Some(stored))))
        .is_empty());
}

#[test]
fn a_host_ends_the_meeting_for_everyone() {
    let mut call = Call::joined_with("ann", PeerRole::Host, vec![]);
    call.send(&ClientMessage::EndMeeting);
    let asked = call.admit(Purpose::HostAction(ClientMessage::EndMeeting));
    assert_eq!(asks(&asked), vec![&Ask::EndMeeting]);
    let failed = call.answer(Answer::MeetingEnded(false));
    assert_eq!(error_code(&failed), Some(ErrorCode::Internal));
    assert!(call.session.is_live());
    let ended = call.answer(Answer::MeetingEnded(true));
    assert!(ended.contains(&Effect::Publish(RoomEvent::Ended)));
    assert!(ended.contains(&Effect::ClearRoom));
    assert_eq!(sent(&ended), vec![&ServerMessage::MeetingEnded]);
    assert_eq!(close_code(&ended), Some(close::ENDED));
    assert!(call.session.is_over());
}

#[test]
fn an_ended_meeting_closes_everyone_else() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let me = call.session.peer().expect("joined").peer_id.clone();
    let ended = call.event(RoomEvent::Ended);
    assert!(ended.contains(&Effect::RemovePresence {
        peer_id: me,
        announce: None
    }));
    assert_eq!(close_code(&ended), Some(close::ENDED));
}

#[test]
fn a_flood_is_warned_then_closed_with_1008_and_the_presence_held() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let joined = call.session.take_tally();
    assert_eq!(joined.received, vec!["join"], "{joined:?}");
    let mut warned = 0;
    let mut closed = None;
    for _ in 0..1000 {
        let effects = call.send(&ClientMessage::Ping);
        if error_code(&effects) == Some(ErrorCode::RateLimited) {
            warned += 1;
        }
        if let Some(code) = close_code(&effects) {
            assert!(holds(&effects), "a dropped connection keeps its presence");
            closed = Some(code);
            break;
        }
    }
    assert_eq!(closed, Some(close::POLICY));
    assert!(warned >= 1);
    assert!(call.session.is_over());
    // Read pings and refused frames, told apart for the metrics.
    let tally = call.session.take_tally();
    assert!(tally.throttled >= warned, "{tally:?}");
    assert!(!tally.received.is_empty());
    assert!(tally.received.iter().all(|t| *t == "ping"), "{tally:?}");
    assert_eq!(call.session.take_tally(), Default::default());
}

#[test]
fn a_pause_refills_the_rate_and_an_oversized_frame_closes_with_1009() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let mut refused = 0;
    for _ in 0..250 {
        if error_code(&call.send(&ClientMessage::Ping)) == Some(ErrorCode::RateLimited) {
            refused += 1;
        }
    }
    assert!(refused > 0);
    call.clock.pass(Duration::from_secs(2));
    assert_eq!(
        sent(&call.send(&ClientMessage::Ping)),
        vec![&ServerMessage::Pong]
    );
    let huge = "x".repeat(protocol::MAX_MESSAGE_BYTES + 1);
    let closed = call.input(Input::Frame(Frame::Text(huge)));
    assert_eq!(close_code(&closed), Some(close::TOO_BIG));
    let mut transport = Call::joined_with("bob", PeerRole::Member, vec![]);
    let closed = transport.input(Input::Frame(Frame::TooBig));
    assert_eq!(close_code(&closed), Some(close::TOO_BIG));
}

#[test]
fn bad_frames_get_an_error_and_the_call_goes_on() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let binary = call.input(Input::Frame(Frame::Binary(10)));
    assert_eq!(error_code(&binary), Some(ErrorCode::BadMessage));
    let garbled = call.input(Input::Frame(Frame::Text("{not json".into())));
    assert_eq!(error_code(&garbled), Some(ErrorCode::BadMessage));
    let unknown = call.input(Input::Frame(Frame::Text(r#"{"type":"teleport"}"#.into())));
    assert_eq!(error_code(&unknown), Some(ErrorCode::UnknownType));
    let again = call.send(&ClientMessage::Join {
        version: PROTOCOL_VERSION,
        resume: None,
        media: media(true),
    });
    assert_eq!(error_code(&again), Some(ErrorCode::NotJoined));
    assert!(call.session.is_live());
}

#[test]
fn signals_go_to_the_media_side_and_an_unknown_target_is_named() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let signal = Signal::Candidate {
        candidate: "c".into(),
        sdp_mid: None,
        sdp_m_line_index: None,
    };
    let asked = call.send(&ClientMessage::Signal {
        to: "p-ann".into(),
        signal: signal.clone(),
    });
    assert!(matches!(
        asks(&asked)[..],
        [Ask::Signal { to, signal: s, from }] if to == "p-ann" && *s == signal && from.participant_id == "bob"
    ));
    assert!(call
        .answer(Answer::Signalled {
            to: "p-ann".into(),
            taken: true
        })
        .is_empty());
    let refused = call.answer(Answer::Signalled {
        to: "p-gone".into(),
        taken: false,
    });
    assert!(matches!(
        sent(&refused)[..],
        [ServerMessage::Error { code: ErrorCode::UnknownPeer, about: Some(about), .. }] if about == "p-gone"
    ));
}

#[test]
fn a_media_change_is_stored_and_shown_to_the_others() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let me = call.session.peer().expect("joined").clone();
    let asked = call.send(&ClientMessage::Media {
        media: media(false),
    });
    assert!(matches!(
        asks(&asked)[..],
        [Ask::Update { why: Change::Media, changes, .. }] if changes == &vec![PeerChange::Media(media(false))]
    ));
    // The store failed: the others still see it.
    let shown = call.answer(Answer::Updated(Change::Media, Err(())));
    assert!(matches!(
        &shown[..],
        [Effect::Publish(RoomEvent::Broadcast { skip: Some(skip), message: ServerMessage::PeerUpdated { peer } })]
            if *skip == me.peer_id && !peer.media.mic
    ));
    // Gone from presence: nobody to tell.
    call.send(&ClientMessage::Media { media: media(true) });
    assert!(call
        .answer(Answer::Updated(Change::Media, Ok(None)))
        .is_empty());
}

#[test]
fn a_mute_request_reaches_a_present_peer_only() {
    let mut call = Call::joined_with("ann", PeerRole::Host, vec![]);
    let mute = ClientMessage::AskToMute {
        peer: "p-bob".into(),
    };
    call.send(&mute);
    let asked = call.admit(Purpose::HostAction(mute));
    assert_eq!(
        asks(&asked),
        vec![&Ask::IsPresent {
            peer_id: "p-bob".into(),
            request: HostRequest::Mute,
        }]
    );
    let told = call.answer(Answer::Present {
        peer_id: "p-bob".into(),
        present: true,
        request: HostRequest::Mute,
    });
    assert_eq!(
        told,
        vec![Effect::Publish(RoomEvent::Direct {
            to: "p-bob".into(),
            message: ServerMessage::MuteRequested {
                by_name: "ANN".into()
            }
        })]
    );
    let nobody = call.answer(Answer::Present {
        peer_id: "p-x".into(),
        present: false,
        request: HostRequest::Mute,
    });
    assert_eq!(error_code(&nobody), Some(ErrorCode::UnknownPeer));
}

#[test]
fn a_raised_hand_is_timed_by_the_server_and_a_host_can_lower_it() {
    let mut bob = Call::joined_with("bob", PeerRole::Member, vec![]);
    let hand_up = MediaState {
        hand: true,
        ..media(true)
    };
    let asked = bob.send(&ClientMessage::Media { media: hand_up });
    let wall_ms = bob.clock.now().wall_ms;
    assert!(matches!(
        asks(&asked)[..],
        [Ask::Update { why: Change::Media, changes, .. }]
            if changes == &vec![PeerChange::Media(hand_up), PeerChange::HandUpSince(wall_ms)]
    ));
    // Stored: the others see it, and Bob's page learns its place.
    let mut stored = bob.session.peer().expect("joined").clone();
    stored.hand_raised_at_ms = Some(wall_ms);
    let told = bob.answer(Answer::Updated(Change::Media, Ok(Some(stored.clone()))));
    assert!(
        matches!(&told[..], [Effect::Send(ServerMessage::PeerUpdated { peer })] if *peer == stored),
        "{told:?}"
    );
    // Lowering sends no time.
    let asked = bob.send(&ClientMessage::Media { media: media(true) });
    assert!(matches!(
        asks(&asked)[..],
        [Ask::Update { changes, .. }] if changes == &vec![PeerChange::Media(media(true))]
    ));

    // A member may not lower someone's hand: the rights decide.
    let lower = ClientMessage::LowerHand {
        peer: "p-ann".into(),
    };
    bob.send(&lower);
    let refused = bob.admit(Purpose::HostAction(lower.clone()));
    assert_eq!(error_code(&refused), Some(ErrorCode::Forbidden));

    // A host's request reaches the one named.
    let mut ann = Call::joined_with("ann", PeerRole::Host, vec![]);
    ann.send(&lower);
    let asked = ann.admit(Purpose::HostAction(lower));
    assert_eq!(
        asks(&asked),
        vec![&Ask::IsPresent {
            peer_id: "p-ann".into(),
            request: HostRequest::LowerHand,
        }]
    );
    let told = ann.answer(Answer::Present {
        peer_id: "p-bob".into(),
        present: true,
        request: HostRequest::LowerHand,
    });
    let lowered = ServerMessage::HandLowered {
        by_name: "ANN".into(),
    };
    assert_eq!(
        told,
        vec![Effect::Publish(RoomEvent::Direct {
            to: "p-bob".into(),
            message: lowered.clone(),
        })]
    );

    // Bob's session stores the hand down itself and tells the page.
    bob.send(&ClientMessage::Media { media: hand_up });
    let me = bob.session.peer().expect("joined").peer_id.clone();
    let heard = bob.event(RoomEvent::Direct {
        to: me,
        message: lowered.clone(),
    });
    assert!(matches!(
        asks(&heard)[..],
        [Ask::Update { why: Change::Media, changes, .. }] if changes == &vec![PeerChange::Media(media(true))]
    ));
    assert_eq!(sent(&heard), vec![&lowered]);
}

#[test]
fn reactions_reach_everyone_and_are_rate_limited() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let me = call.session.peer().expect("joined").peer_id.clone();
    let react = ClientMessage::React {
        reaction: protocol::Reaction::Clap,
    };
    for _ in 0..5 {
        let shown = call.send(&react);
        assert_eq!(
            shown,
            vec![Effect::Publish(RoomEvent::Broadcast {
                skip: None,
                message: ServerMessage::Reacted {
                    peer_id: me.clone(),
                    reaction: protocol::Reaction::Clap,
                },
            })]
        );
    }
    let refused = call.send(&react);
    assert_eq!(error_code(&refused), Some(ErrorCode::RateLimited));
    assert!(!refused.iter().any(|e| matches!(e, Effect::Publish(_))));
    call.clock.pass(Duration::from_secs(1));
    assert!(matches!(call.send(&react)[..], [Effect::Publish(_)]));
    // Something that is not one of the reactions is refused as malformed.
    let odd = call.input(Input::Frame(Frame::Text(
        r#"{"type":"react","reaction":"<script>"}"#.to_string(),
    )));
    assert_eq!(error_code(&odd), Some(ErrorCode::BadMessage));
}

#[test]
fn heartbeats_refresh_presence_and_a_silent_or_lost_connection_goes() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let asked = call.input(Input::Timer(Timer::Heartbeat));
    // An automatic meeting's room also looks at its media path.
    assert!(matches!(
        asks(&asked)[..],
        [Ask::Refresh { .. }, Ask::RoomMedia]
    ));
    assert_eq!(
        call.answer(Answer::Refreshed(Some(true))),
        vec![Effect::Ping]
    );
    // A failed refresh keeps the call (pings on); a lost presence makes
    // the page reconnect.
    assert_eq!(call.answer(Answer::Refreshed(None)), vec![Effect::Ping]);
    let lost = call.answer(Answer::Refreshed(Some(false)));
    assert_eq!(sent(&lost), vec![&ServerMessage::Reconnect]);
    assert_eq!(close_code(&lost), Some(close::TRY_AGAIN_LATER));

    let mut silent = Call::joined_with("bob", PeerRole::Member, vec![]);
    silent.clock.pass(Duration::from_secs(21));
    let dropped = silent.input(Input::Timer(Timer::Heartbeat));
    assert!(holds(&dropped));
    assert!(silent.session.is_over());
}

#[test]
fn a_broken_socket_holds_the_presence_for_a_resume() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    call.clock.pass(Duration::from_secs(3));
    let wall = call.clock.now().wall_ms;
    let gone = call.input(Input::SocketGone);
    let grace = RoomSettings::default().reconnect_grace.as_millis() as i64;
    assert_eq!(
        gone,
        vec![Effect::HoldForResume {
            peer_id: FRESH.into(),
            conn_id: "conn-1".into(),
            expires_at_ms: wall + grace,
        }]
    );
    // Before joining there is nothing to hold.
    let mut early = Call::open("bob", PeerRole::Member);
    assert!(early.input(Input::Frame(Frame::Broken)).is_empty());
    assert!(early.session.is_over());
}

#[test]
fn draining_and_lost_events_send_the_page_elsewhere() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let drained = call.input(Input::Draining);
    assert_eq!(sent(&drained), vec![&ServerMessage::Reconnect]);
    assert_eq!(close_code(&drained), Some(close::RESTART));
    assert!(holds(&drained));

    let mut behind = Call::joined_with("bob", PeerRole::Member, vec![]);
    let lagged = behind.input(Input::FellBehind(12));
    assert_eq!(close_code(&lagged), Some(close::TRY_AGAIN_LATER));
    assert!(holds(&lagged));

    // Before join, a lag loses nothing (join reads everything).
    let mut early = Call::open("bob", PeerRole::Member);
    assert!(early.input(Input::FellBehind(3)).is_empty());
    assert!(early.input(Input::Draining).is_empty());
}

#[test]
fn rights_withdrawn_during_the_call_close_with_the_reason() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let me = call.session.peer().expect("joined").peer_id.clone();
    let asked = call.input(Input::Timer(Timer::Recheck));
    assert_eq!(asks(&asked), vec![&Ask::Rights(Purpose::DuringCall)]);
    // A hiccup keeps the call.
    assert!(call
        .answer(Answer::Rights(Purpose::DuringCall, Rights::Unknown))
        .is_empty());
    let signed_out = call.answer(Answer::Rights(Purpose::DuringCall, Rights::SignedOut));
    assert!(signed_out.contains(&Effect::RemovePresence {
        peer_id: me,
        announce: Some(LeaveReason::Left),
    }));
    assert_eq!(close_code(&signed_out), Some(close::SIGNED_OUT));

    // Another person on the same session is a sign-out for this one.
    let mut swapped = Call::joined_with("bob", PeerRole::Member, vec![]);
    let closed = swapped.answer(Answer::Rights(
        Purpose::DuringCall,
        Rights::Admitted(Box::new(caller("eve", PeerRole::Host))),
    ));
    assert_eq!(close_code(&closed), Some(close::SIGNED_OUT));

    let mut cancelled = Call::joined_with("bob", PeerRole::Member, vec![]);
    let closed = cancelled.answer(Answer::Rights(Purpose::DuringCall, Rights::Cancelled));
    assert_eq!(close_code(&closed), Some(close::CANCELLED));

    let mut ended = Call::joined_with("bob", PeerRole::Member, vec![]);
    let closed = ended.answer(Answer::Rights(Purpose::DuringCall, Rights::Ended));
    assert!(closed.contains(&Effect::ClearRoom));
    assert_eq!(close_code(&closed), Some(close::ENDED));
}

#[test]
fn chat_requests_go_to_the_store_and_its_replies_to_the_page() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let asked = call.send(&ClientMessage::ChatSync { after: 5 });
    assert_eq!(
        asks(&asked),
        vec![&Ask::Chat(ChatRequest::Sync { after: 5 })]
    );
    let replies = call.answer(Answer::Chat(vec![
        ServerMessage::Pong,
        ServerMessage::Reconnect,
    ]));
    assert_eq!(
        replies,
        vec![
            Effect::Send(ServerMessage::Pong),
            Effect::Send(ServerMessage::Reconnect)
        ]
    );
}

#[test]
fn leaving_settles_the_presence_and_closes_normally() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    let left = call.send(&ClientMessage::Leave);
    assert!(left.contains(&Effect::RemovePresence {
        peer_id: FRESH.into(),
        announce: Some(LeaveReason::Left),
    }));
    assert_eq!(close_code(&left), Some(close::NORMAL));
    assert!(!holds(&left));
}

fn media_server_offer() -> ClientMessage {
    ClientMessage::MediaServerSignal {
        signal: Signal::Description {
            sdp_type: "offer".into(),
            sdp: "v=0\r\n".into(),
        },
    }
}

#[test]
fn a_page_asks_the_media_server_for_a_few_cameras_by_name() {
    let watch = |peers: &[&str]| ClientMessage::MediaServerWatch {
        peers: peers.iter().map(|p| PeerId::from(*p)).collect(),
        heights: vec![protocol::media_server::TileHeight {
            peer: "p1".into(),
            height: 180,
        }],
    };
    // With direct media every camera comes: nothing to ask, no error.
    let mut direct = Call::joined_with("bob", PeerRole::Member, vec![]);
    assert!(direct.send(&watch(&["p1"])).is_empty());

    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    call.answer(Answer::RoomMedia(MediaPath::Server));
    assert_eq!(
        call.send(&watch(&["p1", "p2"])),
        vec![Effect::WatchOnMediaServer {
            peer_id: FRESH.into(),
            wishes: protocol::media_server::CameraWishes {
                peers: vec!["p1".into(), "p2".into()],
                heights: vec![protocol::media_server::TileHeight {
                    peer: "p1".into(),
                    height: 180,
                }],
            },
        }]
    );
    // More than a few is refused, not cut short; so are more heights than
    // a room has people.
    let five = ["p1", "p2", "p3", "p4", "p5"];
    assert!(five.len() > protocol::media_server::MAX_WATCHED);
    let too_many_heights = ClientMessage::MediaServerWatch {
        peers: vec![],
        heights: (0..=protocol::media_server::MAX_TILE_HEIGHTS)
            .map(|i| protocol::media_server::TileHeight {
                peer: format!("p{i}").into(),
                height: 90,
            })
            .collect(),
    };
    for message in [watch(&five), too_many_heights] {
        let refused = call.send(&message);
        assert!(
            matches!(
                sent(&refused)[..],
                [ServerMessage::Error {
                    code: ErrorCode::BadMessage,
                    ..
                }]
            ),
            "{refused:?}"
        );
        assert!(!refused
            .iter()
            .any(|e| matches!(e, Effect::WatchOnMediaServer { .. })));
    }
}

#[test]
fn only_a_media_server_description_may_be_larger_than_an_ordinary_message() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    call.answer(Answer::RoomMedia(MediaPath::Server));
    // The answer of a page in a 100-person call: about 800 bytes for each
    // of 198 tracks, well over 64 KiB.
    let m_line = format!(
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n{}\r\n",
        "a=x".repeat(199)
    );
    let big_answer = ClientMessage::MediaServerSignal {
        signal: Signal::Description {
            sdp_type: "answer".into(),
            sdp: format!("v=0\r\n{}", m_line.repeat(198)),
        },
    };
    let frame = serde_json::to_string(&big_answer).unwrap();
    assert!(frame.len() > protocol::MAX_MESSAGE_BYTES, "{}", frame.len());
    assert!(
        frame.len() < protocol::MAX_MEDIA_SIGNAL_BYTES,
        "{}",
        frame.len()
    );
    let taken = call.input(Input::Frame(Frame::Text(frame)));
    assert!(
        matches!(&taken[..], [Effect::ToMediaServer { .. }]),
        "{taken:?}"
    );

    // Anything else that large is still too big: a chat message padded
    // out, or a candidate.
    let mut chatty = Call::joined_with("bob", PeerRole::Member, vec![]);
    let padded = format!(
        r#"{{"type":"chat_send","key":"k1","text":"hi","to":null,"pad":"{}"}}"#,
        "x".repeat(protocol::MAX_MESSAGE_BYTES)
    );
    let closed = chatty.input(Input::Frame(Frame::Text(padded)));
    assert_eq!(close_code(&closed), Some(close::TOO_BIG));
    let mut candidate = Call::joined_with("bob", PeerRole::Member, vec![]);
    candidate.answer(Answer::RoomMedia(MediaPath::Server));
    let huge_candidate = ClientMessage::MediaServerSignal {
        signal: Signal::Candidate {
            candidate: "x".repeat(protocol::MAX_MESSAGE_BYTES),
            sdp_mid: None,
            sdp_m_line_index: None,
        },
    };
    let closed = candidate.input(Input::Frame(Frame::Text(
        serde_json::to_string(&huge_candidate).unwrap(),
    )));
    assert_eq!(close_code(&closed), Some(close::TOO_BIG));

    // And a description past the large limit too.
    let mut huge = Call::joined_with("bob", PeerRole::Member, vec![]);
    huge.answer(Answer::RoomMedia(MediaPath::Server));
    let too_big = ClientMessage::MediaServerSignal {
        signal: Signal::Description {
            sdp_type: "answer".into(),
            sdp: "a".repeat(protocol::MAX_MEDIA_SIGNAL_BYTES),
        },
    };
    let closed = huge.input(Input::Frame(Frame::Text(
        serde_json::to_string(&too_big).unwrap(),
    )));
    assert_eq!(close_code(&closed), Some(close::TOO_BIG));
}

#[test]
fn a_room_moving_to_the_media_server_is_told_once_and_then_takes_its_signals() {
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    // Direct: the media server is not for this room (yet).
    let refused = call.send(&media_server_offer());
    assert_eq!(error_code(&refused), Some(ErrorCode::MediaRefused));

    // The room grew: the page hears it once, whether from its own look or
    // from the room.
    let moved = call.answer(Answer::RoomMedia(MediaPath::Server));
    assert_eq!(
        sent(&moved),
        vec![&ServerMessage::MediaPathChanged {
            path: MediaPath::Server
        }]
    );
    let told_again = call.event(RoomEvent::Broadcast {
        skip: None,
        message: ServerMessage::MediaPathChanged {
            path: MediaPath::Server,
        },
    });
    assert!(told_again.is_empty(), "{told_again:?}");
    let signalled = call.send(&media_server_offer());
    assert!(
        matches!(&signalled[..], [Effect::ToMediaServer { peer_id, .. }] if peer_id.as_str() == FRESH),
        "{signalled:?}"
    );
    // Closing the media-server connection is the page's to say.
    assert_eq!(
        call.send(&ClientMessage::MediaServerClose),
        vec![Effect::CloseMediaServer]
    );

    // Back to direct, announced by another connection's look.
    let back = call.event(RoomEvent::Broadcast {
        skip: None,
        message: ServerMessage::MediaPathChanged {
            path: MediaPath::Direct,
        },
    });
    assert_eq!(
        sent(&back),
        vec![&ServerMessage::MediaPathChanged {
            path: MediaPath::Direct
        }]
    );
}

#[test]
fn a_fixed_media_setting_never_looks_at_the_room_size_and_sets_the_limit() {
    let settings = RoomSettings {
        max_participants: 6,
        media_server_max_participants: 100,
        ..RoomSettings::default()
    };
    let limit_for = |mode: &str, settings: &RoomSettings| {
        let mut caller = caller("bob", PeerRole::Member);
        caller.meeting.media_mode = mode.into();
        caller.meeting.max_participants = 50;
        let mut session = CallSession::new(
            caller,
            settings.clone(),
            "conn-1".into(),
            FRESH.into(),
            Clock::new().now(),
        );
        let clock = Clock::new();
        session.handle(
            Input::Frame(Frame::Text(
                serde_json::to_string(&ClientMessage::Join {
                    version: PROTOCOL_VERSION,
                    resume: None,
                    media: media(true),
                })
                .unwrap(),
            )),
            clock.now(),
        );
        let admitted = Rights::Admitted(Box::new(session.caller().clone()));
        let asked = session.handle(
            Input::Answer(Answer::Rights(Purpose::AtJoin, admitted)),
            clock.now(),
        );
        asked.iter().find_map(|effect| match effect {
            Effect::Ask(Ask::Join { limit, .. }) => Some(*limit),
            _ => None,
        })
    };
    // Direct only: the mesh limit; automatic or server: the media
    // server's (under the meeting's own 50).
    assert_eq!(limit_for("direct", &settings), Some(6));
    assert_eq!(limit_for("automatic", &settings), Some(50));
    assert_eq!(limit_for("server", &settings), Some(50));
    // A server that never uses the media server keeps the mesh limit.
    let mut mesh = settings.clone();
    mesh.media.server = crate::media::paths::ServerMediaMode::Mesh;
    assert_eq!(limit_for("automatic", &mesh), Some(6));

    let mut call = Call::open("bob", PeerRole::Member);
    call.session = {
        let mut caller = caller("bob", PeerRole::Member);
        caller.meeting.media_mode = "server".into();
        CallSession::new(
            caller,
            settings,
            "conn-1".into(),
            FRESH.into(),
            call.clock.now(),
        )
    };
    call.join(None);
    call.admit(Purpose::AtJoin);
    call.answer(Answer::Joined(Some(JoinOutcome::Joined {
        displaced: vec![],
    })));
    let peers: Vec<PeerInfo> = call.session.peer().cloned().into_iter().collect();
    let welcome = call.answer(Answer::Roster {
        peers,
        chat_head: 0,
        ice: ice(),
        media_path: MediaPath::Server,
    });
    assert!(matches!(
        sent(&welcome)[..],
        [ServerMessage::Welcome {
            media_path: MediaPath::Server,
            ..
        }]
    ));
    let beat = call.input(Input::Timer(Timer::Heartbeat));
    assert!(matches!(asks(&beat)[..], [Ask::Refresh { .. }]), "{beat:?}");
}

#[test]
fn media_server_signals_need_a_joined_and_still_admitted_connection() {
    // Before `join`: refused like any other message.
    let mut waiting = Call::open("bob", PeerRole::Member);
    let early = waiting.send(&media_server_offer());
    assert_eq!(error_code(&early), Some(ErrorCode::NotJoined));
    assert!(!early
        .iter()
        .any(|e| matches!(e, Effect::ToMediaServer { .. })));

    // Removed on a connection opened before: nothing reaches the media
    // server any more.
    let mut call = Call::joined_with("bob", PeerRole::Member, vec![]);
    call.answer(Answer::RoomMedia(MediaPath::Server));
    call.event(RoomEvent::Removed {
        participant_id: "bob".into(),
    });
    assert!(call.session.is_over());
    assert!(call.send(&media_server_offer()).is_empty());
}

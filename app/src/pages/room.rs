//! The room: the live call for an admitted participant. The server renders
//! the frame; the browser runs the call (`crate::call::engine`).

use super::lobby::KnockPanel;
use super::meeting_frame::WithMeeting;
use crate::call::{
    CallView, ChatEntry, ChatNotice, ChatStatus, EndReason, LinkState, Notice, Phase,
};
use crate::i18n::*;
use crate::linkify::{segments, Segment};
use crate::lobby::Admission;
use crate::meetings::Meeting;
use crate::protocol::{PeerInfo, PeerRole, CHAT_MAX_CHARS};
use leptos::either::Either;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_query_map;
use std::collections::HashMap;

/// Media streams by peer id ("" is this page's own), browser objects that
/// cannot live in signals.
pub type Streams =
    StoredValue<HashMap<crate::protocol::PeerId, web_sys::MediaStream>, LocalStorage>;

/// What the page can ask of the running call (browser only).
#[derive(Clone, Copy)]
struct Actions {
    #[cfg(feature = "hydrate")]
    call: StoredValue<Option<crate::call::engine::Call>, LocalStorage>,
}

impl Actions {
    fn with(&self, _f: impl FnOnce(&CallHandle)) {
        #[cfg(feature = "hydrate")]
        self.call.with_value(|call| {
            if let Some(call) = call {
                _f(call)
            }
        });
    }
}

#[cfg(feature = "hydrate")]
type CallHandle = crate::call::engine::Call;
#[cfg(not(feature = "hydrate"))]
type CallHandle = ();

#[component]
pub fn RoomPage() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, room_title).to_string()) />
        <WithMeeting content=|m| view! { <Room meeting=m /> } />
    }
}

/// Checks the door again (a bookmarked room link is not a way in), then
/// starts the call.
#[component]
fn Room(meeting: Meeting) -> impl IntoView {
    let i18n = use_i18n();
    let code = meeting.code.clone();
    let door = Resource::new(move || code.clone(), crate::lobby::door_state);
    let join_path = format!("{}/join", meeting.path());
    view! {
        <Suspense fallback=move || view! { <p class="muted">{t!(i18n, loading)}</p> }>
            {move || {
                let join_path = join_path.clone();
                let meeting = meeting.clone();
                Suspend::new(async move {
                    match door.await {
                        Ok(door) if door.admission == Some(Admission::Admitted) => {
                            Either::Left(view! { <CallRoom meeting moderator=door.is_moderator /> })
                        }
                        _ => Either::Right(view! { <Redirect path=join_path /> }),
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn CallRoom(meeting: Meeting, moderator: bool) -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let mic = query.with_untracked(|q| q.get("mic").as_deref() != Some("0"));
    let cam = query.with_untracked(|q| q.get("cam").as_deref() != Some("0"));
    let view = CallView::new(mic, cam);
    let streams: Streams = StoredValue::new_local(HashMap::new());
    // Only the browser ever stores streams. On the server, the request's
    // reactive owner is cleaned up wherever its response finishes streaming,
    // often another worker thread, and a thread-local value dropped there
    // panics ("Dropped SendWrapper<T> variable from a thread different to
    // the one it has been created with"): drop it now, on this thread.
    #[cfg(not(feature = "hydrate"))]
    streams.dispose();
    let actions = Actions {
        #[cfg(feature = "hydrate")]
        call: StoredValue::new_local(None),
    };
    #[cfg(feature = "hydrate")]
    {
        let code = meeting.code.clone();
        Effect::new(move |started: Option<bool>| {
            if started != Some(true) {
                let call = crate::call::engine::Call::start(view, code.clone(), streams);
                actions.call.set_value(call);
            }
            true
        });
        on_cleanup(move || {
            actions.call.with_value(|call| {
                if let Some(call) = call {
                    if !matches!(view.phase.get_untracked(), Phase::Closed(_)) {
                        call.leave();
                    }
                }
            });
        });
    }
    let people_open = RwSignal::new(false);
    let phase_name = move || match view.phase.get() {
        Phase::Connecting => "connecting",
        Phase::Live => "live",
        Phase::Reconnecting => "reconnecting",
        Phase::Closed(_) => "closed",
    };
    let status_text = move || match view.phase.get() {
        Phase::Connecting => t_string!(i18n, call_connecting).to_string(),
        Phase::Reconnecting => t_string!(i18n, call_reconnecting).to_string(),
        _ => t_string!(i18n, call_connected).to_string(),
    };
    let title = meeting.title.clone();
    let code = meeting.code.clone();
    let meeting_path = meeting.path();
    let join_path = format!("{}/join", meeting.path());

    view! {
        <section class="call" data-testid="call" data-phase=phase_name>
            <header class="call-bar">
                <h1 class="call-title">{title}</h1>
                <span class="pill" class:pill-warn=move || view.phase.get() != Phase::Live
                    role="status" aria-live="polite" data-testid="call-status">{status_text}</span>
                <span class="pill" data-testid="people-count">
                    {move || format!("{} / {}", view.peers.with(|p| p.len()) + 1, view.max_participants.get().max(1))}
                </span>
                <span class="pill" data-testid="media-path" title=move || t_string!(i18n, call_media_label).to_string()
                    data-path=move || match view.media_path.get() {
                        crate::protocol::MediaPath::Direct => "direct",
                        crate::protocol::MediaPath::Server => "server",
                    }>
                    <span class="visually-hidden">{t!(i18n, call_media_label)}": "</span>
                    {move || match view.media_path.get() {
                        crate::protocol::MediaPath::Direct => t_string!(i18n, call_media_direct).to_string(),
                        crate::protocol::MediaPath::Server => t_string!(i18n, call_media_server).to_string(),
                    }}
                </span>
            </header>
            {move || match view.phase.get() {
                Phase::Closed(reason) => Either::Left(view! {
                    <ClosedPanel reason meeting_path=meeting_path.clone() join_path=join_path.clone() />
                }),
                _ => Either::Right(()),
            }}
            <NoticeBar view />
            {move || view.needs_sound.get().then(|| view! {
                <button class="button sound-button" data-testid="enable-sound" on:click=move |_| {
                    #[cfg(feature = "hydrate")]
                    crate::call::engine::resume_sound(view);
                }>{t!(i18n, call_enable_sound)}</button>
            })}
            <div class="call-main" class:hidden=move || matches!(view.phase.get(), Phase::Closed(_))>
                <div class="grid" data-count=move || (view.peers.with(|p| p.len()) + 1).to_string() data-testid="grid">
                    <Tile id=String::new() view streams />
                    <For each=move || view.peers.get() key=|p| p.peer_id.clone() let:peer>
                        <Tile id=peer.peer_id.to_string() view streams />
                    </For>
                </div>
                {move || (view.peers.with(|p| p.is_empty()) && view.phase.get() == Phase::Live).then(|| view! {
                    <p class="muted call-alone" data-testid="call-alone">{t!(i18n, call_alone)}</p>
                })}
                <aside class="call-side">
                    {move || people_open.get().then(|| view! { <PeoplePanel view actions /> })}
                    {move || view.chat_open.get().then(|| view! { <ChatPanel view actions /> })}
                    {moderator.then(|| view! { <KnockPanel code=code.clone() pushed=view.knocks_epoch /> })}
                </aside>
            </div>
            <Controls view actions people_open />
        </section>
    }
}

#[component]
fn ClosedPanel(reason: EndReason, meeting_path: String, join_path: String) -> impl IntoView {
    let i18n = use_i18n();
    let (name, text) = match reason {
        EndReason::Left => ("left", t_string!(i18n, call_left).to_string()),
        EndReason::Removed => ("removed", t_string!(i18n, call_removed).to_string()),
        EndReason::Ended => ("ended", t_string!(i18n, call_ended).to_string()),
        EndReason::Replaced => ("replaced", t_string!(i18n, call_replaced).to_string()),
        EndReason::Full(max) => ("full", t_string!(i18n, call_full, max = max).to_string()),
        EndReason::Failed => ("failed", t_string!(i18n, call_failed).to_string()),
        EndReason::SignedOut => ("signed_out", t_string!(i18n, call_signed_out).to_string()),
        EndReason::Cancelled => ("cancelled", t_string!(i18n, call_cancelled).to_string()),
    };
    let can_rejoin = matches!(
        reason,
        EndReason::Left | EndReason::Replaced | EndReason::Full(_) | EndReason::Failed
    );
    view! {
        <div class="card call-closed" role="status" data-testid="call-closed" data-reason=name>
            <p>{text}</p>
            <p class="actions">
                {can_rejoin.then(|| view! {
                    <a class="button" href=join_path rel="external" data-testid="rejoin">{t!(i18n, call_rejoin)}</a>
                })}
                <a class="button button-secondary" href=meeting_path>{t!(i18n, call_back)}</a>
            </p>
        </div>
    }
}

#[component]
fn NoticeBar(view: CallView) -> impl IntoView {
    let i18n = use_i18n();
    move || {
        view.notice.get().map(|notice| {
            let text = match notice {
                Notice::MutedBy(name) => t_string!(i18n, call_muted_by, name = name).to_string(),
                Notice::ShareFailed => t_string!(i18n, call_share_failed).to_string(),
                Notice::NoMedia(reason) => {
                    t_string!(i18n, call_no_media, reason = reason).to_string()
                }
            };
            view! {
                <p class="notice" role="alert" data-testid="call-notice">
                    <span>{text}</span>
                    <button class="link-button" aria-label="Dismiss" on:click=move |_| view.notice.set(None)>"×"</button>
                </p>
            }
        })
    }
}

/// One person's picture: video (or their initial when the camera is off),
/// name, and state badges. `id` "" is this page's own tile.
#[component]
fn Tile(id: String, view: CallView, streams: Streams) -> impl IntoView {
    let i18n = use_i18n();
    let local = id.is_empty();
    let info = {
        let id = id.clone();
        Signal::derive(move || -> Option<PeerInfo> {
            if local {
                view.me.get().map(|mut me| {
                    me.media = view.local.get();
                    me
                })
            } else {
                view.peers
                    .with(|p| p.iter().find(|p| p.peer_id == id).cloned())
            }
        })
    };
    let media = move || {
        info.with(|i| i.as_ref().map(|i| i.media))
            .unwrap_or_default()
    };
    let name = move || {
        info.with(|i| i.as_ref().map(|i| i.display_name.clone()))
            .unwrap_or_default()
    };
    let peer_id = Signal::derive(move || {
        info.with(|i| i.as_ref().map(|i| i.peer_id.to_string()))
            .unwrap_or_default()
    });
    let speaking = move || view.speaking.with(|s| s.contains(peer_id.get().as_str()));
    let link = {
        let id = id.clone();
        Signal::derive(move || {
            if local {
                None
            } else {
                view.links.with(|l| l.get(id.as_str()).copied())
            }
        })
    };
    let video_ref = NodeRef::<leptos::html::Video>::new();
    let audio_ref = NodeRef::<leptos::html::Audio>::new();
    #[cfg(feature = "hydrate")]
    {
        let key = id.clone();
        Effect::new(move |_| {
            view.media_epoch.track();
            let stream = streams.with_value(|s| s.get(key.as_str()).cloned());
            if let Some(video) = video_ref.get() {
                crate::call::engine::attach(&video, stream.as_ref(), view);
            }
            if let Some(audio) = audio_ref.get() {
                crate::call::engine::attach(&audio, stream.as_ref(), view);
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = streams;
    let initial = move || {
        name()
            .chars()
            .next()
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default()
    };
    let role_badge = move || match info.with(|i| i.as_ref().map(|i| i.role)) {
        Some(PeerRole::Host) => Some(t_string!(i18n, call_host).to_string()),
        Some(PeerRole::CoHost) => Some(t_string!(i18n, call_cohost).to_string()),
        Some(PeerRole::Guest) => Some(t_string!(i18n, guest_badge).to_string()),
        _ => None,
    };
    view! {
        <figure
            class="tile"
            class:speaking=speaking
            class:camera-off=move || !media().cam && !media().screen
            class:screen=move || media().screen
            data-testid="tile"
            data-local=local.to_string()
            data-peer=move || peer_id.get()
            data-name=name
            data-mic=move || if media().mic { "on" } else { "off" }
            data-cam=move || if media().cam { "on" } else { "off" }
            data-screen=move || media().screen.to_string()
            data-hand=move || media().hand.to_string()
            data-speaking=move || speaking().to_string()
            data-link=move || match link.get() {
                Some(LinkState::Connecting) => "connecting",
                Some(LinkState::Connected) => "connected",
                Some(LinkState::Reconnecting) => "reconnecting",
                None => "",
            }
        >
            <video node_ref=video_ref autoplay=true playsinline=true muted=true data-testid="tile-video"></video>
            {(!local).then(|| view! { <audio node_ref=audio_ref autoplay=true data-remote-audio="true"></audio> })}
            <span class="tile-initial" aria-hidden="true">{initial}</span>
            <figcaption class="tile-caption">
                {move || media().hand.then(|| view! { <span class="badge badge-hand" title=move || t_string!(i18n, call_hand_raised).to_string()>"✋"</span> })}
                <span class="tile-name">{name}</span>
                {local.then(|| view! { <span class="muted">" ("{t!(i18n, call_you)}")"</span> })}
                {move || role_badge().map(|b| view! { <span class="badge">{b}</span> })}
                {move || (!media().mic).then(|| view! { <span class="badge badge-off" data-testid="mic-off-badge">{t!(i18n, call_mic_off)}</span> })}
                {move || media().screen.then(|| view! { <span class="badge badge-on">{t!(i18n, call_presenting)}</span> })}
                {move || match link.get() {
                    Some(LinkState::Connecting) => Some(view! { <span class="badge">{t!(i18n, call_peer_connecting)}</span> }.into_any()),
                    Some(LinkState::Reconnecting) => Some(view! { <span class="badge badge-off">{t!(i18n, call_peer_reconnecting)}</span> }.into_any()),
                    _ => None,
                }}
            </figcaption>
        </figure>
    }
}

#[component]
fn Controls(view: CallView, actions: Actions, people_open: RwSignal<bool>) -> impl IntoView {
    let i18n = use_i18n();
    let local = move || view.local.get();
    let live = move || view.phase.get() == Phase::Live || view.phase.get() == Phase::Reconnecting;
    view! {
        <nav class="controls" aria-label=move || t_string!(i18n, call_controls).to_string()
            class:hidden=move || matches!(view.phase.get(), Phase::Closed(_))>
            <button class="control" class:off=move || !local().mic data-testid="mic-button"
                aria-pressed=move || (!local().mic).to_string()
                on:click=move |_| { let on = !view.local.get_untracked().mic; actions.with(|c| { let _ = (c, on); #[cfg(feature = "hydrate")] c.set_mic(on); }); }>
                {move || if local().mic { t_string!(i18n, call_mute).to_string() } else { t_string!(i18n, call_unmute).to_string() }}
            </button>
            <button class="control" class:off=move || !local().cam data-testid="cam-button"
                aria-pressed=move || (!local().cam).to_string()
                on:click=move |_| { let on = !view.local.get_untracked().cam; actions.with(|c| { let _ = (c, on); #[cfg(feature = "hydrate")] c.set_camera(on); }); }>
                {move || if local().cam { t_string!(i18n, call_camera_off).to_string() } else { t_string!(i18n, call_camera_on).to_string() }}
            </button>
            <button class="control" class:on=move || local().screen data-testid="share-button" disabled=move || !live()
                aria-pressed=move || local().screen.to_string()
                on:click=move |_| { let sharing = view.local.get_untracked().screen; actions.with(|c| { let _ = (c, sharing); #[cfg(feature = "hydrate")] if sharing { c.stop_screen() } else { c.share_screen() } }); }>
                {move || if local().screen { t_string!(i18n, call_stop_share).to_string() } else { t_string!(i18n, call_share).to_string() }}
            </button>
            <button class="control" class:on=move || local().hand data-testid="hand-button"
                aria-pressed=move || local().hand.to_string()
                on:click=move |_| { let up = !view.local.get_untracked().hand; actions.with(|c| { let _ = (c, up); #[cfg(feature = "hydrate")] c.set_hand(up); }); }>
                {move || if local().hand { t_string!(i18n, call_lower_hand).to_string() } else { t_string!(i18n, call_raise_hand).to_string() }}
            </button>
            <button class="control" class:on=move || people_open.get() data-testid="people-button"
                aria-expanded=move || people_open.get().to_string()
                on:click=move |_| people_open.update(|o| *o = !*o)>
                {t!(i18n, call_people)}
            </button>
            <button class="control" class:on=move || view.chat_open.get() data-testid="chat-button"
                aria-expanded=move || view.chat_open.get().to_string()
                on:click=move |_| { view.chat_open.update(|o| *o = !*o); view.chat_unread.set(0); }>
                {t!(i18n, chat_title)}
                {move || (view.chat_unread.get() > 0).then(|| view! {
                    <span class="unread" data-testid="chat-unread"
                        aria-label=move || t_string!(i18n, chat_unread, count = view.chat_unread.get()).to_string()>
                        {view.chat_unread.get()}
                    </span>
                })}
            </button>
            <button class="control control-leave" data-testid="leave-button"
                on:click=move |_| actions.with(|c| { let _ = c; #[cfg(feature = "hydrate")] c.leave(); })>
                {t!(i18n, call_leave)}
            </button>
            {move || view.is_moderator().then(|| view! {
                <button class="control control-leave" data-testid="end-button"
                    on:click=move |_| {
                        let confirmed = window()
                            .confirm_with_message(t_string!(i18n, call_end_confirm))
                            .unwrap_or(false);
                        if confirmed {
                            actions.with(|c| { let _ = c; #[cfg(feature = "hydrate")] c.end_meeting(); });
                        }
                    }>
                    {t!(i18n, call_end_for_all)}
                </button>
            })}
        </nav>
    }
}

#[component]
fn PeoplePanel(view: CallView, actions: Actions) -> impl IntoView {
    let i18n = use_i18n();
    let moderator = move || view.is_moderator();
    view! {
        <section class="card side-panel" data-testid="people-panel">
            <h2>{t!(i18n, call_people)}</h2>
            <ul class="people">
                {move || view.me.get().map(|me| view! {
                    <li class="person" data-testid="person" data-peer=me.peer_id.to_string()>
                        <span>{me.display_name.clone()}" ("{t!(i18n, call_you)}")"</span>
                    </li>
                })}
                <For each=move || view.peers.get() key=|p| (p.peer_id.clone(), p.media) let:peer>
                    {
                        let ask = peer.peer_id.clone();
                        let remove = peer.peer_id.clone();
                        let is_host = peer.role == PeerRole::Host;
                        view! {
                            <li class="person" data-testid="person" data-peer=peer.peer_id.to_string()>
                                <span>
                                    {peer.media.hand.then_some("✋ ")}
                                    {peer.display_name.clone()}
                                    {(!peer.media.mic).then(|| view! { <span class="badge badge-off">{t!(i18n, call_mic_off)}</span> })}
                                </span>
                                {move || moderator().then(|| {
                                    let ask = ask.clone();
                                    let remove = remove.clone();
                                    view! {
                                        <span class="person-actions">
                                            <button class="button button-small button-secondary" data-testid="ask-mute"
                                                on:click=move |_| { let peer = ask.clone(); actions.with(|c| { let _ = (c, &peer); #[cfg(feature = "hydrate")] c.ask_to_mute(peer.clone()); }); }>
                                                {t!(i18n, call_ask_mute)}
                                            </button>
                                            {(!is_host).then(|| view! {
                                                <button class="button button-small button-danger" data-testid="remove-person"
                                                    on:click=move |_| { let peer = remove.clone(); actions.with(|c| { let _ = (c, &peer); #[cfg(feature = "hydrate")] c.remove(peer.clone()); }); }>
                                                    {t!(i18n, call_remove)}
                                                </button>
                                            })}
                                        </span>
                                    }
                                })}
                            </li>
                        }
                    }
                </For>
            </ul>
        </section>
    }
}

#[component]
fn ChatPanel(view: CallView, actions: Actions) -> impl IntoView {
    let i18n = use_i18n();
    let draft = RwSignal::new(String::new());
    let recipient = RwSignal::new(String::new());
    let list_ref = NodeRef::<leptos::html::Ol>::new();
    view.chat_unread.set(0);
    // Keep the newest message in view.
    Effect::new(move |_| {
        view.chat.track();
        if let Some(list) = list_ref.get() {
            list.set_scroll_top(list.scroll_height());
        }
    });
    let send = move || {
        let text = draft.get_untracked();
        let to = recipient.get_untracked();
        let to = (!to.is_empty()).then_some(to);
        if text.trim().is_empty() {
            view.chat_notice.set(Some(ChatNotice::Empty));
            return;
        }
        if text.chars().count() > CHAT_MAX_CHARS {
            view.chat_notice.set(Some(ChatNotice::TooLong));
            return;
        }
        actions.with(|c| {
            let _ = (c, &to, &text);
            #[cfg(feature = "hydrate")]
            c.send_chat(text.clone(), to.clone().map(Into::into));
        });
        draft.set(String::new());
    };
    let notice_text = move || {
        view.chat_notice.get().map(|n| match n {
            ChatNotice::TooLong => t_string!(i18n, chat_too_long, max = CHAT_MAX_CHARS).to_string(),
            ChatNotice::Empty => t_string!(i18n, chat_empty).to_string(),
            ChatNotice::RateLimited => t_string!(i18n, chat_rate).to_string(),
            ChatNotice::RecipientGone => t_string!(i18n, chat_recipient_gone).to_string(),
        })
    };
    let too_long = move || draft.with(|d| d.chars().count() > CHAT_MAX_CHARS);
    view! {
        <section class="card side-panel chat" data-testid="chat-panel">
            <h2>{t!(i18n, chat_title)}</h2>
            {move || view.chat_older.get().then(|| view! {
                <button class="link-button" data-testid="chat-older"
                    on:click=move |_| actions.with(|c| { let _ = c; #[cfg(feature = "hydrate")] c.load_older_chat(); })>
                    {t!(i18n, chat_load_older)}
                </button>
            })}
            <ol class="chat-list" node_ref=list_ref data-testid="chat-list" aria-live="polite">
                {move || view.chat.with(|c| c.is_empty()).then(|| view! { <li class="muted">{t!(i18n, chat_nothing)}</li> })}
                <For each=move || view.chat.get() key=|e| (e.key.clone(), e.seq, e.status) let:entry>
                    <ChatLine entry />
                </For>
            </ol>
            <form class="chat-form" on:submit=move |ev| { ev.prevent_default(); send(); }>
                <label class="chat-to">
                    <span>{t!(i18n, chat_to)}</span>
                    <select data-testid="chat-to" prop:value=move || recipient.get()
                        on:change=move |ev| recipient.set(event_target_value(&ev))>
                        <option value="">{t!(i18n, chat_everyone)}</option>
                        <For each=move || view.peers.get() key=|p| p.peer_id.clone() let:peer>
                            <option value=peer.peer_id.to_string()>{peer.display_name.clone()}</option>
                        </For>
                    </select>
                </label>
                <textarea
                    data-testid="chat-input"
                    rows="2"
                    aria-label=move || t_string!(i18n, chat_placeholder).to_string()
                    placeholder=move || t_string!(i18n, chat_placeholder).to_string()
                    aria-invalid=move || too_long().to_string()
                    prop:value=move || draft.get()
                    on:input=move |ev| { draft.set(event_target_value(&ev)); view.chat_notice.set(None); }
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            send();
                        }
                    }
                ></textarea>
                <p class="field-error" role="alert" data-testid="chat-notice">
                    {move || if too_long() { Some(t_string!(i18n, chat_too_long, max = CHAT_MAX_CHARS).to_string()) } else { notice_text() }}
                </p>
                <button type="submit" class="button" data-testid="chat-send" disabled=too_long>{t!(i18n, chat_send)}</button>
            </form>
        </section>
    }
}

#[component]
pub(super) fn ChatLine(entry: ChatEntry) -> impl IntoView {
    let i18n = use_i18n();
    let private = entry.to_id.is_some() || entry.to_name.is_some();
    let status = match entry.status {
        ChatStatus::Pending => "pending",
        ChatStatus::Sent => "sent",
        ChatStatus::Retrying => "retrying",
        ChatStatus::Failed => "failed",
    };
    let time = entry.sent_at_ms.map(crate::time::clock_text);
    let body = segments(&entry.text)
        .into_iter()
        .map(|segment| match segment {
            Segment::Text(text) => Either::Left(text),
            Segment::Link(href) => {
                let text = href.clone();
                Either::Right(view! {
                    <a href=href target="_blank" rel="noopener noreferrer nofollow">{text}</a>
                })
            }
        })
        .collect_view();
    view! {
        <li class="chat-message" class:mine=entry.mine class:private=private
            data-testid="chat-message" data-status=status data-private=private.to_string()
            data-seq=entry.seq.map(|s| s.to_string()).unwrap_or_default()>
            <div class="chat-meta">
                <strong class="chat-sender">{entry.sender_name.clone()}</strong>
                {private.then(|| view! {
                    <span class="badge badge-private">{t!(i18n, chat_private)}</span>
                })}
                {entry.to_name.clone().map(|name| view! {
                    <span class="muted">{t!(i18n, chat_private_to, name = name)}</span>
                })}
                {time.map(|t| view! { <time class="muted">{t}</time> })}
            </div>
            <p class="chat-text">{body}</p>
            {match entry.status {
                ChatStatus::Pending => Some(view! { <span class="chat-state muted">{t!(i18n, chat_sending)}</span> }.into_any()),
                ChatStatus::Retrying => Some(view! { <span class="chat-state muted">{t!(i18n, chat_retrying)}</span> }.into_any()),
                ChatStatus::Failed => Some(view! { <span class="chat-state form-error">{t!(i18n, chat_not_sent)}</span> }.into_any()),
                ChatStatus::Sent => None,
            }}
        </li>
    }
}

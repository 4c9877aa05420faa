//! The room: the live call for an admitted participant. The server renders
//! the frame; the browser runs the call (`crate::call::engine`).

use super::lobby::KnockPanel;
use super::meeting_frame::WithMeeting;
use crate::call::{
    raised_hands, Activity, CallView, ChatEntry, ChatNotice, ChatStatus, EndReason, LinkState,
    Notice, Phase, QualityLevel,
};
use crate::i18n::*;
use crate::linkify::{segments, Segment};
use crate::lobby::Admission;
use crate::meetings::Meeting;
use crate::protocol::{PeerInfo, PeerRole, Reaction, CHAT_MAX_CHARS};
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
    let layout = RwSignal::new(Layout::Grid);
    let pinned = view.pinned;
    // The large tile: the pinned one; in speaker view else whoever spoke
    // last (kept while nobody speaks), else a shared screen.
    let last_speaker = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let me = view
            .me
            .with(|me| me.as_ref().map(|me| me.peer_id.to_string()));
        let speaking = view.speaking.with(|s| {
            s.iter()
                .map(|id| id.to_string())
                .find(|id| Some(id) != me.as_ref())
        });
        if let Some(id) = speaking {
            last_speaker.set(Some(id));
        }
    });
    let featured = Signal::derive(move || -> Option<String> {
        if let Some(id) = pinned.get() {
            return Some(id);
        }
        if layout.get() != Layout::Speaker {
            return None;
        }
        let present = |id: &str| view.peers.with(|p| p.iter().any(|p| p.peer_id == id));
        let screen = view.peers.with(|p| {
            p.iter()
                .find(|p| p.media.screen)
                .map(|p| p.peer_id.to_string())
        });
        last_speaker
            .get()
            .filter(|id| present(id))
            .or(screen)
            .or_else(|| {
                view.peers
                    .with(|p| p.first().map(|p| p.peer_id.to_string()))
            })
    });
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
    let tab_title = {
        let title = meeting.title.clone();
        move || match view.chat_unread.get() {
            0 => title.clone(),
            unread => format!("({unread}) {title}"),
        }
    };
    let help = NodeRef::<leptos::html::Dialog>::new();
    let devices = NodeRef::<leptos::html::Dialog>::new();
    let shortcuts_on = RwSignal::new(true);
    #[cfg(feature = "hydrate")]
    shortcuts::listen(view, actions, people_open, help, shortcuts_on);

    view! {
        <Title text=crate::page_title(tab_title) />
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
            <ActivityLine view />
            {move || view.needs_sound.get().then(|| view! {
                <button class="button sound-button" data-testid="enable-sound" on:click=move |_| {
                    #[cfg(feature = "hydrate")]
                    crate::call::engine::resume_sound(view);
                }>{t!(i18n, call_enable_sound)}</button>
            })}
            <div class="call-main" class:hidden=move || matches!(view.phase.get(), Phase::Closed(_))>
                <div class="grid" data-count=move || (view.peers.with(|p| p.len()) + 1).to_string() data-testid="grid"
                    data-layout=move || layout.get().as_str() class:has-featured=move || featured.get().is_some()>
                    <Tile id=String::new() view streams pinned featured />
                    <For each=move || view.peers.get() key=|p| p.peer_id.clone() let:peer>
                        <Tile id=peer.peer_id.to_string() view streams pinned featured />
                    </For>
                </div>
                {move || (view.peers.with(|p| p.is_empty()) && view.phase.get() == Phase::Live).then(|| view! {
                    <p class="muted call-alone" data-testid="call-alone">{t!(i18n, call_alone)}</p>
                })}
                <aside class="call-side">
                    {move || people_open.get().then(|| view! { <PeoplePanel view actions /> })}
                    {move || view.chat_open.get().then(|| view! { <ChatPanel view actions /> })}
                    {moderator.then(|| view! {
                        <KnockPanel code=code.clone() pushed=view.knocks_epoch
                            on_new_knock=Callback::new(move |_| {
                                view.tell(Activity::Knocked);
                                #[cfg(feature = "hydrate")]
                                crate::call::engine::chime(view);
                            }) />
                    })}
                </aside>
            </div>
            <Controls view actions people_open help devices layout />
            <ShortcutsDialog help shortcuts_on />
            <DevicesDialog devices actions sounds=view.sounds />
        </section>
    }
}

/// What just happened in the room, in one line that fades; screen readers
/// hear it through the polite live region.
#[component]
fn ActivityLine(view: CallView) -> impl IntoView {
    let i18n = use_i18n();
    let fresh = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some((count, _)) = view.activity.get() {
            fresh.set(true);
            set_timeout(
                move || {
                    if view
                        .activity
                        .with_untracked(|a| a.as_ref().map(|(n, _)| *n))
                        == Some(count)
                    {
                        fresh.set(false);
                    }
                },
                std::time::Duration::from_secs(5),
            );
        }
    });
    let text = move || {
        view.activity.get().map(|(_, activity)| match activity {
            Activity::Joined(name) => t_string!(i18n, activity_joined, name = name).to_string(),
            Activity::Left(name) => t_string!(i18n, activity_left, name = name).to_string(),
            Activity::Message(name) => t_string!(i18n, activity_message, name = name).to_string(),
            Activity::RaisedHand(name) => t_string!(i18n, activity_hand, name = name).to_string(),
            Activity::Knocked => t_string!(i18n, activity_knocked).to_string(),
        })
    };
    view! {
        <p class="activity" class:activity-fresh=move || fresh.get() role="status" aria-live="polite"
            aria-atomic="true" data-testid="call-activity">{text}</p>
    }
}

/// The keyboard shortcuts, listed; single-key shortcuts can be turned off
/// here (they get in the way of speech input and some screen readers).
#[component]
fn ShortcutsDialog(
    help: NodeRef<leptos::html::Dialog>,
    shortcuts_on: RwSignal<bool>,
) -> impl IntoView {
    let i18n = use_i18n();
    let rows = move || {
        [
            ("M", t_string!(i18n, shortcut_mic).to_string()),
            ("V", t_string!(i18n, shortcut_cam).to_string()),
            ("H", t_string!(i18n, shortcut_hand).to_string()),
            ("C", t_string!(i18n, shortcut_chat).to_string()),
            ("P", t_string!(i18n, shortcut_people).to_string()),
            ("Shift + L", t_string!(i18n, shortcut_leave).to_string()),
            ("?", t_string!(i18n, shortcut_help).to_string()),
        ]
        .into_iter()
        .map(|(key, what)| view! { <tr><th scope="row"><kbd>{key}</kbd></th><td>{what}</td></tr> })
        .collect_view()
    };
    view! {
        <dialog node_ref=help class="card shortcuts-dialog" data-testid="shortcuts-dialog"
            aria-labelledby="shortcuts-title">
            <h2 id="shortcuts-title">{t!(i18n, call_shortcuts)}</h2>
            <table class="shortcuts">
                <tbody>{rows}</tbody>
            </table>
            <p class="muted">{t!(i18n, shortcuts_hint)}</p>
            <label class="check">
                <input type="checkbox" data-testid="shortcuts-enabled" prop:checked=move || shortcuts_on.get()
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        shortcuts_on.set(on);
                        #[cfg(feature = "hydrate")]
                        shortcuts::remember(on);
                    } />
                {t!(i18n, shortcuts_enabled)}
            </label>
            <form method="dialog">
                <button class="button" data-testid="shortcuts-close">{t!(i18n, shortcuts_close)}</button>
            </form>
        </dialog>
    }
}

/// Camera, microphone and speaker, changed during the call.
#[component]
fn DevicesDialog(
    devices: NodeRef<leptos::html::Dialog>,
    actions: Actions,
    sounds: RwSignal<bool>,
) -> impl IntoView {
    let i18n = use_i18n();
    let list = RwSignal::new(crate::media::Devices::default());
    let chosen_camera = RwSignal::new(String::new());
    let chosen_microphone = RwSignal::new(String::new());
    let chosen_speaker = RwSignal::new(String::new());
    let speaker_choice = RwSignal::new(false);
    // The list is read each time the dialog opens (devices come and go,
    // and labels appear only once the page may use them).
    let refresh = move |_: ()| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let found = crate::media::list_devices().await;
            let (camera, microphone) = crate::media::remembered_devices();
            let first =
                |l: &[crate::media::Device]| l.first().map(|d| d.id.clone()).unwrap_or_default();
            chosen_camera.set(camera.unwrap_or_else(|| first(&found.cameras)));
            chosen_microphone.set(microphone.unwrap_or_else(|| first(&found.microphones)));
            chosen_speaker
                .set(crate::media::remembered_speaker().unwrap_or_else(|| first(&found.speakers)));
            speaker_choice.set(crate::media::can_choose_speaker() && !found.speakers.is_empty());
            list.set(found);
        });
    };
    let select = move |id: &'static str,
                       label: String,
                       options: Vec<crate::media::Device>,
                       chosen: RwSignal<String>,
                       kind: &'static str| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <select id=id data-testid=id
                    on:change=move |ev| {
                        let device = event_target_value(&ev);
                        chosen.set(device.clone());
                        actions.with(|c| {
                            let _ = (c, &device, kind);
                            #[cfg(feature = "hydrate")]
                            if kind == "speaker" { c.use_speaker(device.clone()) } else { c.use_device(kind, device.clone()) }
                        });
                    }>
                    {options.into_iter().map(|d| {
                        let device = d.id.clone();
                        view! { <option value=d.id.clone() selected=move || chosen.get() == device>{d.label.clone()}</option> }
                    }).collect_view()}
                </select>
            </div>
        }
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| refresh(()));
    view! {
        <dialog node_ref=devices class="card devices-dialog" data-testid="devices-dialog"
            aria-labelledby="devices-title" on:toggle=move |_| refresh(())>
            <h2 id="devices-title">{t!(i18n, call_devices)}</h2>
            {move || {
                let found = list.get();
                view! {
                    {select("call-camera", t_string!(i18n, lobby_camera).to_string(), found.cameras, chosen_camera, "video")}
                    {select("call-microphone", t_string!(i18n, lobby_microphone).to_string(), found.microphones, chosen_microphone, "audio")}
                    {speaker_choice.get().then(|| select("call-speaker", t_string!(i18n, lobby_speaker).to_string(), found.speakers, chosen_speaker, "speaker"))}
                }
            }}
            <label class="check">
                <input type="checkbox" data-testid="sounds-enabled" prop:checked=move || sounds.get()
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        sounds.set(on);
                        #[cfg(feature = "hydrate")]
                        crate::call::engine::remember_sounds(on);
                    } />
                {t!(i18n, call_sounds)}
            </label>
            <form method="dialog">
                <button class="button" data-testid="devices-close">{t!(i18n, shortcuts_close)}</button>
            </form>
        </dialog>
    }
}

/// Opens a dialog of the call (modal: focus stays inside, Escape closes).
fn open_dialog(help: NodeRef<leptos::html::Dialog>) {
    if let Some(dialog) = help.get_untracked() {
        if !dialog.open() {
            let _ = dialog.show_modal();
        }
    }
}

/// Keyboard shortcuts for the call (browser only).
#[cfg(feature = "hydrate")]
mod shortcuts {
    use super::*;

    const STORAGE_KEY: &str = "moim.shortcuts";

    pub fn remember(on: bool) {
        crate::call::engine::store_switch(STORAGE_KEY, on);
    }

    fn remembered() -> bool {
        crate::call::engine::stored_switch(STORAGE_KEY).unwrap_or(true)
    }

    /// Whether a key press belongs to what has focus (typing in a field,
    /// a select, an open dialog) rather than to the call.
    fn typing(ev: &leptos::ev::KeyboardEvent) -> bool {
        use wasm_bindgen::JsCast;
        let Some(element) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return false;
        };
        let tag = element.tag_name().to_ascii_lowercase();
        matches!(tag.as_str(), "input" | "textarea" | "select")
            || element
                .closest("[contenteditable], dialog[open]")
                .ok()
                .flatten()
                .is_some()
    }

    pub fn listen(
        view: CallView,
        actions: Actions,
        people_open: RwSignal<bool>,
        help: NodeRef<leptos::html::Dialog>,
        shortcuts_on: RwSignal<bool>,
    ) {
        shortcuts_on.set(remembered());
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.ctrl_key() || ev.meta_key() || ev.alt_key() || ev.repeat() || typing(&ev) {
                return;
            }
            if !shortcuts_on.get_untracked() {
                return;
            }
            let live = matches!(
                view.phase.get_untracked(),
                Phase::Live | Phase::Reconnecting
            );
            if !live {
                return;
            }
            let local = view.local.get_untracked();
            let handled = match ev.key().as_str() {
                "m" | "M" if !ev.shift_key() => {
                    actions.with(|c| c.set_mic(!local.mic));
                    true
                }
                "v" | "V" if !ev.shift_key() => {
                    actions.with(|c| c.set_camera(!local.cam));
                    true
                }
                "h" | "H" if !ev.shift_key() => {
                    actions.with(|c| c.set_hand(!local.hand));
                    true
                }
                "c" | "C" if !ev.shift_key() => {
                    view.chat_open.update(|open| *open = !*open);
                    view.chat_unread.set(0);
                    true
                }
                "p" | "P" if !ev.shift_key() => {
                    people_open.update(|open| *open = !*open);
                    true
                }
                "L" if ev.shift_key() => {
                    actions.with(|c| c.leave());
                    true
                }
                "?" => {
                    open_dialog(help);
                    true
                }
                _ => false,
            };
            if handled {
                ev.prevent_default();
            }
        });
        on_cleanup(move || handle.remove());
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
                Notice::HandLoweredBy(name) => {
                    t_string!(i18n, call_hand_lowered_by, name = name).to_string()
                }
                Notice::DeviceFailed => t_string!(i18n, call_device_failed).to_string(),
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
fn Tile(
    id: String,
    view: CallView,
    streams: Streams,
    pinned: RwSignal<Option<String>>,
    featured: Signal<Option<String>>,
) -> impl IntoView {
    let i18n = use_i18n();
    let local = id.is_empty();
    let figure_ref = NodeRef::<leptos::html::Figure>::new();
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
    // The media server does not send this camera now (last-N): the tile
    // shows the name, and says so.
    let video_paused = move || {
        !local
            && (media().cam || media().screen)
            && view
                .video_paused
                .with(|p| p.contains(peer_id.get().as_str()))
    };
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
    let quality = {
        let id = id.clone();
        move || view.quality.with(|q| q.get(id.as_str()).copied())
    };
    let hand_position = move || {
        let me = peer_id.get();
        raised_hands(&view.everyone())
            .iter()
            .position(|p| p.peer_id == me)
            .map(|at| at + 1)
    };
    let reactions = {
        let id = id.clone();
        move || {
            view.reactions.with(|list| {
                list.iter()
                    .filter(|r| r.peer_id == id)
                    .cloned()
                    .collect::<Vec<_>>()
            })
        }
    };
    let role_badge = move || match info.with(|i| i.as_ref().map(|i| i.role)) {
        Some(PeerRole::Host) => Some(t_string!(i18n, call_host).to_string()),
        Some(PeerRole::CoHost) => Some(t_string!(i18n, call_cohost).to_string()),
        Some(PeerRole::Guest) => Some(t_string!(i18n, guest_badge).to_string()),
        _ => None,
    };
    let is_featured = {
        let id = id.clone();
        move || featured.with(|f| f.as_deref() == Some(id.as_str()))
    };
    let is_pinned = {
        let id = id.clone();
        move || pinned.with(|p| p.as_deref() == Some(id.as_str()))
    };
    let toggle_pin = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            pinned.update(|p| {
                *p = if p.as_deref() == Some(id.as_str()) {
                    None
                } else {
                    Some(id)
                }
            });
        }
    };
    // Full screen is the browser's (Esc leaves it too): the button follows
    // it through the event fired at this tile on the way in and out.
    let is_full_screen = RwSignal::new(false);
    let toggle_full_screen = move |_| {
        if is_full_screen.get_untracked() {
            document().exit_fullscreen();
        } else if let Some(figure) = figure_ref.get_untracked() {
            let _ = figure.request_fullscreen();
        }
    };
    let on_full_screen_change =
        move |_| is_full_screen.set(document().fullscreen_element().is_some());
    view! {
        <figure
            node_ref=figure_ref
            class="tile"
            class:featured=is_featured.clone()
            class:speaking=speaking
            class:camera-off=move || !media().cam && !media().screen
            class:video-paused=video_paused
            class:screen=move || media().screen
            on:fullscreenchange=on_full_screen_change
            data-testid="tile"
            data-local=local.to_string()
            data-peer=move || peer_id.get()
            data-name=name
            data-mic=move || if media().mic { "on" } else { "off" }
            data-cam=move || if media().cam { "on" } else { "off" }
            data-screen=move || media().screen.to_string()
            data-hand=move || media().hand.to_string()
            data-speaking=move || speaking().to_string()
            data-video-paused=move || video_paused().to_string()
            data-featured=move || is_featured().to_string()
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
            <div class="tile-actions">
                {(!local).then(|| {
                    let is_pinned = is_pinned.clone();
                    let pressed = is_pinned.clone();
                    view! {
                        <button class="tile-button" data-testid="pin-button" aria-pressed=move || pressed().to_string()
                            aria-label=move || if is_pinned() {
                                t_string!(i18n, call_unpin, name = name()).to_string()
                            } else {
                                t_string!(i18n, call_pin, name = name()).to_string()
                            }
                            on:click=toggle_pin>
                            "📌"
                        </button>
                    }
                })}
                {move || media().screen.then(|| view! {
                    <button class="tile-button" data-testid="fullscreen-button"
                        aria-pressed=move || is_full_screen.get().to_string()
                        aria-label=move || t_string!(i18n, call_full_screen, name = name()).to_string()
                        on:click=toggle_full_screen>
                        "⛶"
                    </button>
                })}
            </div>
            <div class="tile-reactions">
                <For each=reactions key=|r| r.id let:r>
                    <span class="reaction" role="img" data-testid="reaction" data-reaction=r.reaction.as_str()
                        aria-label=move || reaction_name(i18n, r.reaction)>{r.reaction.emoji()}</span>
                </For>
            </div>
            <figcaption class="tile-caption">
                {move || media().hand.then(|| {
                    let position = hand_position();
                    let label = move || match position {
                        Some(at) => t_string!(i18n, call_hand_position, position = at).to_string(),
                        None => t_string!(i18n, call_hand_raised).to_string(),
                    };
                    view! {
                        <span class="badge badge-hand" data-testid="hand-badge"
                            data-position=position.map(|p| p.to_string()).unwrap_or_default()
                            title=label aria-label=label>
                            "✋"{position.map(|p| format!(" {p}"))}
                        </span>
                    }
                })}
                {move || quality().map(|q| {
                    let (level, words) = match q.level {
                        QualityLevel::Good => ("good", t_string!(i18n, quality_good).to_string()),
                        QualityLevel::Fair => ("fair", t_string!(i18n, quality_fair).to_string()),
                        QualityLevel::Poor => ("poor", t_string!(i18n, quality_poor).to_string()),
                    };
                    let unknown = || "?".to_string();
                    let detail = t_string!(
                        i18n,
                        quality_detail,
                        loss = format!("{:.1}", q.loss_percent),
                        rtt = q.round_trip_ms.map(|ms| format!("{ms:.0}")).unwrap_or_else(unknown),
                        kbps = q.available_kbps.map(|k| format!("{k:.0}")).unwrap_or_else(unknown)
                    )
                    .to_string();
                    let explained = format!("{words} {detail}");
                    view! {
                        <span class="quality" role="img" tabindex="0" data-testid="quality" data-level=level
                            aria-label=explained.clone() title=explained.clone() data-explain=explained>
                            <span class="quality-bar"></span>
                            <span class="quality-bar"></span>
                            <span class="quality-bar"></span>
                        </span>
                    }
                })}
                <span class="tile-name">{name}</span>
                {local.then(|| view! { <span class="muted">" ("{t!(i18n, call_you)}")"</span> })}
                {move || role_badge().map(|b| view! { <span class="badge">{b}</span> })}
                {move || (!media().mic).then(|| view! { <span class="badge badge-off" data-testid="mic-off-badge">{t!(i18n, call_mic_off)}</span> })}
                {move || media().screen.then(|| view! { <span class="badge badge-on">{t!(i18n, call_presenting)}</span> })}
                {move || video_paused().then(|| view! {
                    <span class="badge" data-testid="video-paused-badge" title=move || t_string!(i18n, call_video_paused_why).to_string()>
                        {t!(i18n, call_video_paused)}
                    </span>
                })}
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
fn Controls(
    view: CallView,
    actions: Actions,
    people_open: RwSignal<bool>,
    help: NodeRef<leptos::html::Dialog>,
    devices: NodeRef<leptos::html::Dialog>,
    layout: RwSignal<Layout>,
) -> impl IntoView {
    let i18n = use_i18n();
    let reactions_open = RwSignal::new(false);
    let hands_up = move || raised_hands(&view.everyone()).len();
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
            <div class="reaction-picker"
                on:keydown=move |ev: leptos::ev::KeyboardEvent| if ev.key() == "Escape" { reactions_open.set(false); }>
                <button class="control" class:on=move || reactions_open.get() data-testid="reactions-button"
                    aria-expanded=move || reactions_open.get().to_string() aria-controls="reaction-menu"
                    disabled=move || !live()
                    on:click=move |_| reactions_open.update(|o| *o = !*o)>
                    {t!(i18n, call_react)}
                </button>
                <div class="reaction-menu" id="reaction-menu" role="group" class:hidden=move || !reactions_open.get()
                    aria-label=move || t_string!(i18n, call_reactions).to_string()>
                    {Reaction::ALL.into_iter().map(|reaction| view! {
                        <button class="reaction-choice" data-testid="reaction-choice" data-reaction=reaction.as_str()
                            aria-label=move || reaction_name(i18n, reaction) title=move || reaction_name(i18n, reaction)
                            on:click=move |_| actions.with(|c| { let _ = (c, reaction); #[cfg(feature = "hydrate")] c.react(reaction); })>
                            {reaction.emoji()}
                        </button>
                    }).collect_view()}
                </div>
            </div>
            <button class="control" class:on=move || people_open.get() data-testid="people-button"
                aria-expanded=move || people_open.get().to_string()
                on:click=move |_| people_open.update(|o| *o = !*o)>
                {t!(i18n, call_people)}
                {move || (hands_up() > 0).then(|| view! {
                    <span class="unread" data-testid="hands-count"
                        aria-label=move || t_string!(i18n, call_hands_count, count = hands_up()).to_string()>
                        "✋"{hands_up()}
                    </span>
                })}
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
            <button class="control" data-testid="layout-button"
                aria-pressed=move || (layout.get() == Layout::Speaker).to_string()
                on:click=move |_| layout.update(|l| *l = match l { Layout::Grid => Layout::Speaker, Layout::Speaker => Layout::Grid })>
                {t!(i18n, call_speaker_view)}
            </button>
            <button class="control" data-testid="devices-button" aria-haspopup="dialog"
                disabled=move || !live()
                on:click=move |_| open_dialog(devices)>
                {t!(i18n, call_devices)}
            </button>
            <button class="control" data-testid="shortcuts-button" aria-haspopup="dialog"
                on:click=move |_| open_dialog(help)>
                {t!(i18n, call_shortcuts)}
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
    let my_id = move || view.me.with(|me| me.as_ref().map(|me| me.peer_id.clone()));
    let hands = move || raised_hands(&view.everyone());
    view! {
        <section class="card side-panel" data-testid="people-panel">
            <h2>{t!(i18n, call_people)}</h2>
            {move || (!hands().is_empty()).then(|| view! {
                <section class="hand-queue" data-testid="hand-queue" aria-labelledby="hand-queue-title">
                    <h3 id="hand-queue-title">{t!(i18n, call_hand_queue)}</h3>
                    <ol>
                        {hands().into_iter().map(|peer| {
                            let is_me = my_id().as_ref() == Some(&peer.peer_id);
                            let target = peer.peer_id.clone();
                            let name = peer.display_name.clone();
                            view! {
                                <li class="person" data-testid="hand-queue-entry" data-peer=peer.peer_id.to_string()>
                                    <span>{peer.display_name.clone()}{is_me.then(|| view! { " ("{t!(i18n, call_you)}")" })}</span>
                                    {(moderator() && !is_me).then(|| {
                                        let label = t_string!(i18n, call_lower_hand_of, name = name.clone()).to_string();
                                        view! {
                                            <button class="button button-small button-secondary" data-testid="lower-hand"
                                                aria-label=label
                                                on:click=move |_| { let peer = target.clone(); actions.with(|c| { let _ = (c, &peer); #[cfg(feature = "hydrate")] c.lower_hand(peer.clone()); }); }>
                                                {t!(i18n, call_lower_hand)}
                                            </button>
                                        }
                                    })}
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                </section>
            })}
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

/// A reaction's name in the viewer's language (for its button and for
/// screen readers).
fn reaction_name(i18n: leptos_i18n::I18nContext<Locale>, reaction: Reaction) -> String {
    match reaction {
        Reaction::ThumbsUp => t_string!(i18n, reaction_thumbs_up),
        Reaction::Heart => t_string!(i18n, reaction_heart),
        Reaction::Laugh => t_string!(i18n, reaction_laugh),
        Reaction::Clap => t_string!(i18n, reaction_clap),
        Reaction::Surprised => t_string!(i18n, reaction_surprised),
        Reaction::Celebrate => t_string!(i18n, reaction_celebrate),
    }
    .to_string()
}

/// How the tiles are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Everyone the same size.
    Grid,
    /// One large tile (the pinned person, else whoever speaks), the others
    /// small beside it.
    Speaker,
}

impl Layout {
    fn as_str(self) -> &'static str {
        match self {
            Layout::Grid => "grid",
            Layout::Speaker => "speaker",
        }
    }
}

//! The pre-join lobby (preview, devices, name, knock), the host's list of
//! knocks, and the room page an admitted person reaches.

use super::meeting_frame::WithMeeting;
use crate::auth::Viewer;
use crate::components::{field_problem_text, form_error_text, use_auth};
use crate::error::ApiError;
use crate::i18n::*;
use crate::lobby::{Admission, DecideKnock, EnterMeeting};
use crate::meetings::Meeting;
use leptos::either::{Either, EitherOf4};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

/// How often waiting screens ask the server again.
const POLL_MS: u64 = 1500;
/// Polling where pushed updates arrive too.
const SLOW_POLL_MS: u64 = 15_000;

/// A counter that ticks every `period_ms` in the browser (never on the
/// server), to refresh resources that follow someone else's decisions.
fn use_ticker(period_ms: u64) -> ReadSignal<u64> {
    let (tick, set_tick) = signal(0u64);
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || set_tick.update(|t| *t += 1),
            std::time::Duration::from_millis(period_ms),
        );
        if let Ok(handle) = handle {
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (set_tick, period_ms);
    tick
}

/// While `waiting`, listens to the door's pushed events and writes each
/// admission to `pushed`; `live` says whether the push is connected.
#[cfg(feature = "hydrate")]
fn watch_door(
    code: String,
    waiting: Signal<bool>,
    pushed: RwSignal<Option<Admission>>,
    live: RwSignal<bool>,
) {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    struct Open {
        source: web_sys::EventSource,
        _listeners: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    }
    impl Drop for Open {
        fn drop(&mut self) {
            self.source.close();
        }
    }
    // Dropped (closing the stream) with the page's owner.
    let open = StoredValue::new_local(None::<Open>);
    Effect::new(move |_| {
        if !waiting.get() {
            open.set_value(None);
            live.set(false);
            return;
        }
        if open.with_value(Option::is_some) {
            return;
        }
        let Ok(source) = web_sys::EventSource::new(&format!("/m/{code}/door/events")) else {
            return;
        };
        let stream = source.clone();
        let on_door = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let Some(message) = event.dyn_ref::<web_sys::MessageEvent>() else {
                return;
            };
            let status = message
                .data()
                .as_string()
                .and_then(|text| serde_json::from_str::<crate::lobby::DoorStatus>(&text).ok());
            if let Some(admission) = status.and_then(|s| s.admission) {
                if admission != Admission::Waiting {
                    // Final: the server ends the stream; do not reopen it.
                    stream.close();
                }
                pushed.set(Some(admission));
            }
        });
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| live.set(true));
        // The browser reconnects by itself; meanwhile, ask quickly.
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| live.set(false));
        let _ = source.add_event_listener_with_callback("door", on_door.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback("open", on_open.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback("error", on_error.as_ref().unchecked_ref());
        open.set_value(Some(Open {
            source,
            _listeners: vec![on_door, on_open, on_error],
        }));
    });
}

#[cfg(not(feature = "hydrate"))]
fn watch_door(
    _code: String,
    _waiting: Signal<bool>,
    _pushed: RwSignal<Option<Admission>>,
    _live: RwSignal<bool>,
) {
}

#[component]
pub fn LobbyPage() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, lobby_title).to_string()) />
        <WithMeeting content=|m| view! { <Lobby meeting=m /> } />
    }
}

#[component]
fn Lobby(meeting: Meeting) -> impl IntoView {
    let i18n = use_i18n();
    let viewer = use_auth().viewer;
    let enter = ServerAction::<EnterMeeting>::new();
    let mic_on = RwSignal::new(true);
    let cam_on = RwSignal::new(true);
    let code = meeting.code.clone();
    let knocks_first = meeting.waiting_room;
    let room_path = format!("{}/room", meeting.path());
    let waiting =
        Signal::derive(move || matches!(enter.value().get(), Some(Ok(Admission::Waiting))));

    // While waiting, the decision is pushed (`/m/{code}/door/events`);
    // asking the server stays as a slow safety net, and as the way while
    // the push is not connected (a proxy that buffers it, say).
    let pushed = RwSignal::new(None::<Admission>);
    let push_live = RwSignal::new(false);
    watch_door(code.clone(), waiting, pushed, push_live);
    // One count of "time to ask": every fast tick while the push is not
    // connected, every slow one while it is. The push connecting changes
    // nothing by itself (switching between two tickers' counts would have
    // been a change of the request's inputs, and so a request).
    let fast_tick = use_ticker(POLL_MS);
    let ask_count = RwSignal::new(0u64);
    Effect::new(move |_| {
        let tick = fast_tick.get();
        if tick > 0 && (!push_live.get_untracked() || tick.is_multiple_of(SLOW_POLL_MS / POLL_MS)) {
            ask_count.update(|count| *count += 1);
        }
    });
    let door = Resource::new(
        {
            let code = code.clone();
            move || {
                // A final answer pushed: nothing more to ask.
                let decided = matches!(pushed.get(), Some(a) if a != Admission::Waiting);
                (waiting.get() && !decided, ask_count.get(), code.clone())
            }
        },
        |(waiting, _, code)| async move {
            if waiting {
                crate::lobby::door_state(code)
                    .await
                    .ok()
                    .and_then(|d| d.admission)
            } else {
                None
            }
        },
    );
    let admission = Signal::derive(move || {
        pushed
            .get()
            .or_else(|| door.get().flatten())
            .or_else(|| enter.value().get().and_then(|r| r.ok()))
    });
    let navigate = use_navigate();
    Effect::new(move |_| {
        if admission.get() == Some(Admission::Admitted) {
            let query = format!(
                "?mic={}&cam={}",
                u8::from(mic_on.get_untracked()),
                u8::from(cam_on.get_untracked())
            );
            navigate(&format!("{room_path}{query}"), Default::default());
        }
    });

    let error = Signal::derive(move || enter.value().get().and_then(|r| r.err()));
    let name_problem = move || error.get().and_then(|e| e.field_problem("display_name"));
    let guest_name = Signal::derive(move || match viewer.get() {
        Some(Ok(Some(Viewer::Guest(g)))) => Some(g.display_name),
        _ => None,
    });
    let user_name = Signal::derive(move || match viewer.get() {
        Some(Ok(Some(Viewer::User(u)))) => Some(u.display_name),
        _ => None,
    });

    view! {
        <section class="lobby">
            <div class="lobby-preview">
                <MediaPreview mic_on cam_on />
                <p class="selftest-link">
                    <a href=format!("/selftest?meeting={}", meeting.code) data-testid="selftest-link">
                        {t!(i18n, lobby_selftest_link)}
                    </a>
                </p>
            </div>
            <div class="lobby-side">
                <p class="eyebrow">{meeting.title.clone()}</p>
                <h1>{t!(i18n, lobby_title)}</h1>
                {move || match admission.get() {
                    Some(Admission::Waiting) => EitherOf4::A(view! {
                        <p
                            class="status-waiting"
                            role="status"
                            data-testid="lobby-waiting"
                            data-push=move || if push_live.get() { "live" } else { "connecting" }
                        >
                            <span class="spinner" aria-hidden="true"></span>
                            {t!(i18n, lobby_waiting)}
                        </p>
                    }),
                    Some(Admission::Denied) => EitherOf4::B(view! {
                        <p class="form-error" role="alert" data-testid="lobby-denied">{t!(i18n, lobby_denied_entry)}</p>
                    }),
                    Some(Admission::Removed) => EitherOf4::C(view! {
                        <p class="form-error" role="alert" data-testid="lobby-removed">{t!(i18n, lobby_removed)}</p>
                    }),
                    _ => EitherOf4::D({
                        let code = code.clone();
                        view! {
                        <ActionForm action=enter attr:novalidate=true attr:data-testid="lobby-form">
                            <input type="hidden" name="code" value=code />
                            <Transition fallback=|| ()>
                                {move || match user_name.get() {
                                    Some(name) => Either::Left(view! {
                                        <p>{t!(i18n, lobby_your_name)} ": " <strong>{name}</strong></p>
                                    }),
                                    None => Either::Right(view! {
                                        <div class="field" class:field-invalid=move || name_problem().is_some()>
                                            <label for="lobby-name">{t!(i18n, lobby_your_name)}</label>
                                            <input
                                                id="lobby-name"
                                                name="display_name"
                                                autocomplete="name"
                                                maxlength=crate::validate::DISPLAY_NAME_MAX
                                                value=guest_name.get_untracked().unwrap_or_default()
                                                prop:value=move || guest_name.get().unwrap_or_default()
                                                aria-invalid=move || if name_problem().is_some() { "true" } else { "false" }
                                            />
                                            <p class="field-error" role="alert" data-field-error="display_name">
                                                {move || name_problem().map(|p| field_problem_text(i18n, p))}
                                            </p>
                                        </div>
                                    }),
                                }}
                            </Transition>
                            <p class="form-error" role="alert" data-testid="form-error">
                                {move || error.get().and_then(|e| match e {
                                    ApiError::Unauthenticated => Some(t_string!(i18n, lobby_sign_in_needed).to_string()),
                                    e => form_error_text(i18n, &e),
                                })}
                            </p>
                            <button type="submit" class="button" data-testid="lobby-enter" disabled=move || enter.pending().get()>
                                {move || if knocks_first {
                                    t_string!(i18n, lobby_ask).to_string()
                                } else {
                                    t_string!(i18n, lobby_join_now).to_string()
                                }}
                            </button>
                        </ActionForm>
                    }}),
                }}
            </div>
        </section>
    }
}

/// The camera preview with device choice, a microphone meter and the
/// mic/camera switches. Everything happens in the browser.
#[component]
fn MediaPreview(mic_on: RwSignal<bool>, cam_on: RwSignal<bool>) -> impl IntoView {
    let i18n = use_i18n();
    let video_ref = NodeRef::<leptos::html::Video>::new();
    // None while starting; Some(Ok) when live; Some(Err) with the problem.
    let status = RwSignal::new(None::<Result<(), crate::media::MediaProblem>>);
    let level = RwSignal::new(0u32);
    let devices = RwSignal::new(crate::media::Devices::default());
    let camera = RwSignal::new(String::new());
    let microphone = RwSignal::new(String::new());
    let speaker = RwSignal::new(String::new());

    #[cfg(feature = "hydrate")]
    {
        use crate::media;
        let stream = StoredValue::new_local(None::<web_sys::MediaStream>);
        let meter = StoredValue::new_local(None::<media::LevelMeter>);
        let release = move || {
            stream.update_value(|s| {
                if let Some(s) = s.take() {
                    media::stop(&s);
                }
            });
            meter.update_value(|m| {
                if let Some(m) = m.take() {
                    m.close();
                }
            });
        };
        // (Re)open media whenever the chosen devices change.
        Effect::new(move |_| {
            let cam = camera.get();
            let mic = microphone.get();
            release();
            status.set(None);
            leptos::task::spawn_local(async move {
                let cam = (!cam.is_empty()).then_some(cam);
                let mic = (!mic.is_empty()).then_some(mic);
                match media::open_media(cam.as_deref(), mic.as_deref()).await {
                    Ok(s) => {
                        // The lobby may be gone by now (the person went on
                        // into the room): let the devices go.
                        let (Some(mic), Some(cam)) =
                            (mic_on.try_get_untracked(), cam_on.try_get_untracked())
                        else {
                            media::stop(&s);
                            return;
                        };
                        media::set_enabled(&s, "audio", mic);
                        media::set_enabled(&s, "video", cam);
                        if let Some(video) = video_ref.get_untracked() {
                            video.set_src_object(Some(&s));
                            media::play_quietly(&video);
                        }
                        let list = media::list_devices().await;
                        // Gone during that wait too (someone who clicks
                        // "Join now" at once): the signals are disposed.
                        let Some(chosen_speaker) = speaker.try_get_untracked() else {
                            media::stop(&s);
                            return;
                        };
                        if chosen_speaker.is_empty() {
                            if let Some(first) = list.speakers.first() {
                                speaker.set(first.id.clone());
                            }
                        }
                        devices.set(list);
                        let cam_id = media::current_device(&s, "video");
                        let mic_id = media::current_device(&s, "audio");
                        // The room opens the same devices.
                        media::remember_devices(cam_id.as_deref(), mic_id.as_deref());
                        if let Some(id) = cam_id {
                            camera.update_untracked(|c| *c = id);
                        }
                        if let Some(id) = mic_id {
                            microphone.update_untracked(|m| *m = id);
                        }
                        meter.set_value(media::LevelMeter::new(&s));
                        stream.set_value(Some(s));
                        status.set(Some(Ok(())));
                    }
                    Err(problem) => {
                        status.try_set(Some(Err(problem)));
                    }
                }
            });
        });
        Effect::new(move |_| {
            let on = mic_on.get();
            stream.with_value(|s| {
                if let Some(s) = s {
                    media::set_enabled(s, "audio", on);
                }
            });
        });
        Effect::new(move |_| {
            let on = cam_on.get();
            stream.with_value(|s| {
                if let Some(s) = s {
                    media::set_enabled(s, "video", on);
                }
            });
        });
        // Speaker choice where the browser supports setSinkId.
        Effect::new(move |_| {
            let id = speaker.get();
            if !id.is_empty() {
                // The room plays remote voices on it too.
                media::remember_speaker(&id);
            }
            if let Some(video) = video_ref.get() {
                let video: &web_sys::HtmlMediaElement = &video;
                if let Ok(set_sink) = js_sys::Reflect::get(video, &"setSinkId".into()) {
                    if let Ok(f) = wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(set_sink) {
                        let _ = f.call1(video, &id.into());
                    }
                }
            }
        });
        if let Ok(handle) = set_interval_with_handle(
            move || {
                let now = meter
                    .try_update_value(|m| m.as_mut().map(|m| m.level()))
                    .flatten();
                level.set(if mic_on.get_untracked() {
                    now.unwrap_or(0)
                } else {
                    0
                });
            },
            std::time::Duration::from_millis(100),
        ) {
            on_cleanup(move || handle.clear());
        }
        on_cleanup(release);
    }

    let problem_text = move || match status.get() {
        Some(Err(crate::media::MediaProblem::Denied)) => {
            Some(t_string!(i18n, lobby_denied).to_string())
        }
        Some(Err(crate::media::MediaProblem::NoDevice)) => {
            Some(t_string!(i18n, lobby_no_device).to_string())
        }
        Some(Err(crate::media::MediaProblem::Failed)) => {
            Some(t_string!(i18n, lobby_media_error).to_string())
        }
        _ => None,
    };
    let device_select = move |label: Signal<String>,
                              id: &'static str,
                              options: Signal<Vec<crate::media::Device>>,
                              chosen: RwSignal<String>| {
        view! {
            <div class="field">
                <label for=id>{move || label.get()}</label>
                <select id=id on:change=move |ev| chosen.set(event_target_value(&ev)) prop:value=move || chosen.get()>
                    {move || options.get().into_iter().map(|d| view! { <option value=d.id.clone()>{d.label.clone()}</option> }).collect_view()}
                </select>
            </div>
        }
    };
    view! {
        <div class="preview-frame" class:camera-off=move || !cam_on.get()>
            <video
                node_ref=video_ref
                autoplay=true
                muted=true
                playsinline=true
                aria-label=move || t_string!(i18n, lobby_preview_label).to_string()
                data-testid="preview-video"
            ></video>
            {move || status.get().is_none().then(|| view! { <p class="preview-note">{t!(i18n, lobby_starting)}</p> })}
        </div>
        <p class="form-error" role="alert" data-testid="media-problem">{problem_text}</p>
        <div class="meter" role="meter" aria-valuemin="0" aria-valuemax="100"
            aria-valuenow=move || level.get().to_string()
            aria-label=move || t_string!(i18n, lobby_mic_level).to_string()
            data-testid="mic-level">
            <span class="meter-fill" style:width=move || format!("{}%", level.get())></span>
        </div>
        <div class="toggles">
            <label class="check">
                <input type="checkbox" prop:checked=move || mic_on.get() on:change=move |ev| mic_on.set(event_target_checked(&ev)) data-testid="mic-toggle" />
                {t!(i18n, lobby_mic_on)}
            </label>
            <label class="check">
                <input type="checkbox" prop:checked=move || cam_on.get() on:change=move |ev| cam_on.set(event_target_checked(&ev)) data-testid="cam-toggle" />
                {t!(i18n, lobby_camera_on)}
            </label>
        </div>
        <div class="device-choice">
            {device_select(Signal::derive(move || t_string!(i18n, lobby_camera).to_string()), "device-camera", Signal::derive(move || devices.get().cameras), camera)}
            {device_select(Signal::derive(move || t_string!(i18n, lobby_microphone).to_string()), "device-microphone", Signal::derive(move || devices.get().microphones), microphone)}
            {move || (!devices.get().speakers.is_empty()).then(|| device_select(Signal::derive(move || t_string!(i18n, lobby_speaker).to_string()), "device-speaker", Signal::derive(move || devices.get().speakers), speaker))}
        </div>
    }
}

/// People waiting at the door, for hosts and co-hosts, refreshed while
/// shown.
///
/// `pushed` changes when the call's connection says the list changed (a
/// knock or another host's decision); without it the list is polled.
#[component]
pub fn KnockPanel(
    code: String,
    #[prop(optional, into)] pushed: Option<Signal<u64>>,
    /// Called when more people wait than when last looked (not on the
    /// first look).
    #[prop(optional, into)]
    on_new_knock: Option<Callback<()>>,
) -> impl IntoView {
    let i18n = use_i18n();
    // Pushed updates make polling a slow safety net only.
    let tick = use_ticker(if pushed.is_some() {
        SLOW_POLL_MS
    } else {
        POLL_MS
    });
    let decide = ServerAction::<DecideKnock>::new();
    let knocks = Resource::new(
        {
            let code = code.clone();
            move || {
                let pushed = pushed.map(|p| p.get()).unwrap_or(0);
                (tick.get(), pushed, decide.version().get(), code.clone())
            }
        },
        |(_, _, _, code)| crate::lobby::list_knocks(code),
    );
    // The last count seen, to tell a new knock from a decision. (Read
    // where the list is shown: a read of the resource outside this panel's
    // own <Transition> would suspend the whole call around it.)
    let seen_total = StoredValue::new(None::<u64>);
    let notice_new_knocks = move |total: u64| {
        let before = seen_total.get_value();
        seen_total.set_value(Some(total));
        if let (Some(before), Some(on_new_knock)) = (before, on_new_knock) {
            if total > before {
                on_new_knock.run(());
            }
        }
    };
    let decide_form = move |code: String,
                            participant: String,
                            decision: &'static str,
                            label: String,
                            testid: String| {
        view! {
            <ActionForm action=decide attr:class="inline-form">
                <input type="hidden" name="code" value=code />
                <input type="hidden" name="participant_id" value=participant />
                <input type="hidden" name="decision" value=decision />
                <button type="submit" class=if decision == "admit" { "button button-small" } else { "button button-small button-secondary" } data-testid=testid>{label}</button>
            </ActionForm>
        }
    };
    view! {
        <section class="card knocks" aria-live="polite" data-testid="knock-panel">
            <h2>{t!(i18n, knocks_title)}</h2>
            <Transition fallback=|| ()>
                {move || {
                    let code = code.clone();
                    Suspend::new(async move {
                        let listed = knocks.await;
                        if let Ok(page) = &listed {
                            notice_new_knocks(page.total);
                        }
                        match listed {
                            Ok(page) if page.knocks.is_empty() => Either::Left(view! { <p class="muted">{t!(i18n, knocks_none)}</p> }.into_any()),
                            Ok(page) => {
                                // One page is shown; say how many more wait.
                                let more = page.total.saturating_sub(page.knocks.len() as u64);
                                Either::Left(view! {
                                    <ul class="knock-list">
                                        {page.knocks.into_iter().map(|k| {
                                            let code = code.clone();
                                            view! {
                                                <li class="knock" data-testid="knock">
                                                    <span class="knock-name">{k.display_name.clone()}</span>
                                                    {k.is_guest.then(|| view! { <span class="badge">{t!(i18n, guest_badge)}</span> })}
                                                    <span class="knock-actions">
                                                        {decide_form(code.clone(), k.participant_id.clone(), "admit", t_string!(i18n, knock_admit).to_string(), "admit".to_string())}
                                                        {decide_form(code.clone(), k.participant_id.clone(), "deny", t_string!(i18n, knock_deny).to_string(), "deny".to_string())}
                                                    </span>
                                                </li>
                                            }
                                        }).collect_view()}
                                    </ul>
                                    {(more > 0).then(|| view! { <p class="muted" data-testid="knocks-more">{t!(i18n, knocks_more, count = more)}</p> })}
                                    <div class="knock-all">
                                        {decide_form(code.clone(), "*".to_string(), "admit", t_string!(i18n, knock_admit_all).to_string(), "admit-all".to_string())}
                                        {decide_form(code.clone(), "*".to_string(), "deny", t_string!(i18n, knock_deny_all).to_string(), "deny-all".to_string())}
                                    </div>
                                }.into_any())
                            },
                            Err(err) => Either::Right(view! { <p class="form-error">{form_error_text(i18n, &err)}</p> }),
                        }
                    })
                }}
            </Transition>
        </section>
    }
}

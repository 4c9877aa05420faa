//! The connection self-test (`/selftest`): camera, microphone and speaker,
//! then the network: which ICE candidates this browser can gather with the
//! server's STUN/TURN, and a call from the page to itself through the relay
//! only. A verdict in plain words and a report to copy for the operator.
//! `?meeting=<code>` uses that meeting's servers (for a guest in a lobby).

use crate::i18n::*;
use crate::selftest::{network_verdict, DeviceFindings, NetworkFindings, NetworkVerdict};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// Where one part of the test stands. (The server renders only `Idle`.)
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Step<T> {
    Idle,
    Running,
    Done(T),
    Failed(String),
}

#[component]
pub fn SelfTestPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let meeting = query.with_untracked(|q| q.get("meeting").filter(|c| !c.is_empty()));
    let devices = RwSignal::new(Step::<DeviceFindings>::Idle);
    let network = RwSignal::new(Step::<NetworkFindings>::Idle);
    let heard = RwSignal::new(0u32);
    let video_ref = NodeRef::<leptos::html::Video>::new();
    #[cfg(feature = "hydrate")]
    let stream = StoredValue::new_local(None::<web_sys::MediaStream>);
    #[cfg(feature = "hydrate")]
    let level_timer = StoredValue::new_local(None::<IntervalHandle>);
    #[cfg(feature = "hydrate")]
    on_cleanup(move || {
        stream.with_value(|s| {
            if let Some(s) = s {
                crate::media::stop(s);
            }
        });
        level_timer.with_value(|t| {
            if let Some(t) = t {
                t.clear();
            }
        });
    });

    let check_devices = move |_| {
        devices.set(Step::Running);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            match crate::media::open_media(None, None).await {
                Ok(opened) => {
                    let found = probe::describe(&opened);
                    if let Some(video) = video_ref.get_untracked() {
                        video.set_src_object(Some(&opened));
                        crate::media::play_quietly(&video);
                    }
                    level_timer.set_value(probe::watch_level(&opened, heard));
                    stream.set_value(Some(opened));
                    devices.set(Step::Done(found));
                }
                Err(problem) => devices.set(Step::Failed(format!("{problem:?}"))),
            }
        });
    };
    let play_sound = move |_| {
        #[cfg(feature = "hydrate")]
        probe::play_tone();
    };
    let code = meeting.clone();
    let check_network = move |_| {
        network.set(Step::Running);
        let code = code.clone();
        leptos::task::spawn_local(async move {
            match crate::ice::self_test_servers(code).await {
                Ok(config) => {
                    let _ = &config;
                    #[cfg(feature = "hydrate")]
                    network.set(Step::Done(probe::network(&config).await));
                }
                Err(err) => network.set(Step::Failed(
                    crate::components::form_error_text(i18n, &err)
                        .unwrap_or_else(|| err.to_string()),
                )),
            }
        });
    };

    let device_text = move || match devices.get() {
        Step::Idle => None,
        Step::Running => Some(t_string!(i18n, selftest_starting).to_string()),
        Step::Done(found) => Some(match found.camera {
            Some(size) => t_string!(i18n, selftest_camera_ok, size = size).to_string(),
            None => t_string!(i18n, selftest_camera_none).to_string(),
        }),
        Step::Failed(_) => Some(t_string!(i18n, selftest_devices_failed).to_string()),
    };
    let mic_text = move || match devices.get() {
        Step::Done(found) if !found.microphone => {
            Some(t_string!(i18n, selftest_mic_none).to_string())
        }
        Step::Done(_) if heard.get() > 0 => Some(t_string!(i18n, selftest_mic_heard).to_string()),
        Step::Done(_) => Some(t_string!(i18n, selftest_mic_speak).to_string()),
        _ => None,
    };
    let verdict = move || match network.get() {
        Step::Done(found) => Some(network_verdict(&found)),
        _ => None,
    };
    let verdict_text = move || {
        verdict().map(|v| match v {
            NetworkVerdict::Good => t_string!(i18n, selftest_verdict_good).to_string(),
            NetworkVerdict::RelayOnly => t_string!(i18n, selftest_verdict_relay_only).to_string(),
            NetworkVerdict::RelayFailed => {
                t_string!(i18n, selftest_verdict_relay_failed).to_string()
            }
            NetworkVerdict::NoRelay => t_string!(i18n, selftest_verdict_no_relay).to_string(),
            NetworkVerdict::Blocked => t_string!(i18n, selftest_verdict_blocked).to_string(),
        })
    };
    let relay_state = move || match network.get() {
        Step::Done(found) => match (&found.relay_call, found.turn_configured) {
            (_, false) => "not_configured",
            (Some(Ok(_)), true) if found.relay > 0 => "ok",
            _ => "failed",
        },
        Step::Running => "running",
        _ => "",
    };
    let report = move || {
        let device = match devices.get() {
            Step::Done(found) => serde_json::json!({
                "camera": found.camera,
                "microphone": found.microphone,
                "microphone_heard": heard.get() > 0,
            }),
            Step::Failed(why) => serde_json::json!({ "error": why }),
            _ => serde_json::json!(null),
        };
        let net = match network.get() {
            Step::Done(found) => serde_json::json!({
                "verdict": network_verdict(&found).as_str(),
                "candidates": { "host": found.host, "srflx": found.srflx, "relay": found.relay },
                "turn_configured": found.turn_configured,
                "relay_call_ms": found.relay_call.as_ref().and_then(|r| r.as_ref().ok()),
                "relay_call_error": found.relay_call.as_ref().and_then(|r| r.as_ref().err()),
            }),
            Step::Failed(why) => serde_json::json!({ "error": why }),
            _ => serde_json::json!(null),
        };
        let user_agent = {
            #[cfg(feature = "hydrate")]
            {
                window().navigator().user_agent().unwrap_or_default()
            }
            #[cfg(not(feature = "hydrate"))]
            {
                String::new()
            }
        };
        serde_json::to_string_pretty(&serde_json::json!({
            "moim_self_test": 1,
            "browser": user_agent,
            "devices": device,
            "network": net,
        }))
        .unwrap_or_default()
    };
    let copied = RwSignal::new(false);
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let text = report();
            let clipboard = window().navigator().clipboard();
            let promise = clipboard.write_text(&text);
            leptos::task::spawn_local(async move {
                copied.set(wasm_bindgen_futures::JsFuture::from(promise).await.is_ok());
            });
        }
    };
    let running = move || network.get() == Step::Running;

    view! {
        <Title text=crate::page_title(move || t_string!(i18n, selftest_title).to_string()) />
        <section class="narrow selftest">
            <h1>{t!(i18n, selftest_title)}</h1>
            <p class="muted">{t!(i18n, selftest_lead)}</p>

            <section class="card" aria-labelledby="selftest-devices">
                <h2 id="selftest-devices">{t!(i18n, selftest_devices)}</h2>
                <div class="preview-frame">
                    <video node_ref=video_ref autoplay=true muted=true playsinline=true
                        aria-label=move || t_string!(i18n, lobby_preview_label).to_string()
                        data-testid="selftest-video"></video>
                </div>
                <p class="actions">
                    <button class="button" data-testid="selftest-devices-start" on:click=check_devices>
                        {t!(i18n, selftest_devices_start)}
                    </button>
                    <button class="button button-secondary" data-testid="selftest-sound" on:click=play_sound>
                        {t!(i18n, selftest_play_sound)}
                    </button>
                </p>
                <p role="status" data-testid="selftest-camera">{device_text}</p>
                <p role="status" data-testid="selftest-microphone" data-heard=move || (heard.get() > 0).to_string()>{mic_text}</p>
            </section>

            <section class="card" aria-labelledby="selftest-network">
                <h2 id="selftest-network">{t!(i18n, selftest_network)}</h2>
                <p class="muted">{t!(i18n, selftest_network_lead)}</p>
                <p class="actions">
                    <button class="button" data-testid="selftest-network-start" on:click=check_network disabled=running>
                        {move || if running() { t_string!(i18n, selftest_running).to_string() } else { t_string!(i18n, selftest_network_start).to_string() }}
                    </button>
                </p>
                {move || match network.get() {
                    Step::Done(found) => Some(view! {
                        <dl class="selftest-facts">
                            <dt>{t!(i18n, selftest_candidates)}</dt>
                            <dd data-testid="selftest-candidates" data-host=found.host.to_string() data-srflx=found.srflx.to_string() data-relay=found.relay.to_string()>
                                {format!("host {} · srflx {} · relay {}", found.host, found.srflx, found.relay)}
                            </dd>
                            <dt>{t!(i18n, selftest_relay)}</dt>
                            <dd>{match &found.relay_call {
                                Some(Ok(ms)) => t_string!(i18n, selftest_relay_ok, ms = *ms).to_string(),
                                Some(Err(_)) | None if found.turn_configured => t_string!(i18n, selftest_relay_failed).to_string(),
                                _ => t_string!(i18n, selftest_relay_none).to_string(),
                            }}</dd>
                        </dl>
                    }.into_any()),
                    Step::Failed(why) => Some(view! { <p class="form-error" role="alert">{why}</p> }.into_any()),
                    _ => None,
                }}
                <p class="selftest-verdict" role="status" aria-live="polite" data-testid="selftest-verdict"
                    data-verdict=move || verdict().map(|v| v.as_str()).unwrap_or_default()
                    data-relay=relay_state>
                    {verdict_text}
                </p>
            </section>

            <section class="card" aria-labelledby="selftest-report">
                <h2 id="selftest-report">{t!(i18n, selftest_report)}</h2>
                <label for="selftest-report-text" class="muted">{t!(i18n, selftest_report_lead)}</label>
                <textarea id="selftest-report-text" readonly=true rows="10" data-testid="selftest-report" prop:value=report></textarea>
                <p class="actions">
                    <button class="button button-secondary" data-testid="selftest-copy" on:click=copy>{t!(i18n, selftest_copy)}</button>
                    <span role="status">{move || copied.get().then(|| t_string!(i18n, selftest_copied).to_string())}</span>
                </p>
            </section>
        </section>
    }
}

/// The probes (browser only).
#[cfg(feature = "hydrate")]
mod probe {
    use crate::ice::IceConfig;
    use crate::selftest::{candidate_type, DeviceFindings, NetworkFindings};
    use leptos::prelude::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{
        MediaStream, MediaStreamTrack, RtcDataChannel, RtcDataChannelEvent, RtcIceGatheringState,
        RtcPeerConnection, RtcPeerConnectionIceEvent, RtcSessionDescriptionInit,
    };

    /// How long candidates are gathered at most.
    const GATHER_MS: i32 = 8_000;
    /// How long the call through the relay may take to carry one message.
    const RELAY_CALL_MS: i32 = 10_000;

    async fn sleep(ms: i32) {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        });
        let _ = JsFuture::from(promise).await;
    }

    fn now() -> f64 {
        js_sys::Date::now()
    }

    pub fn describe(stream: &MediaStream) -> DeviceFindings {
        let camera = stream
            .get_video_tracks()
            .get(0)
            .dyn_into::<MediaStreamTrack>()
            .ok()
            .map(|track| {
                let settings = track.get_settings();
                let get = |name: &str| {
                    js_sys::Reflect::get(&settings, &name.into())
                        .ok()
                        .and_then(|v| v.as_f64())
                        .unwrap_or(0.0)
                };
                format!("{}×{}", get("width"), get("height"))
            });
        DeviceFindings {
            camera,
            microphone: stream.get_audio_tracks().length() > 0,
        }
    }

    /// Counts the moments the microphone hears something.
    pub fn watch_level(stream: &MediaStream, heard: RwSignal<u32>) -> Option<IntervalHandle> {
        let meter = Rc::new(RefCell::new(crate::media::LevelMeter::new(stream)?));
        set_interval_with_handle(
            move || {
                if meter.borrow_mut().level() > 12 {
                    heard.update(|n| *n += 1);
                }
            },
            // Often enough to catch a short sound (a word's first
            // syllable, or a test device's beep).
            std::time::Duration::from_millis(50),
        )
        .ok()
    }

    /// One second of a tone on the chosen speaker.
    pub fn play_tone() {
        crate::media::play_tone(440.0, 1000);
    }

    fn configuration(config: &IceConfig, relay_only: bool) -> web_sys::RtcConfiguration {
        let mut config = config.clone();
        config.relay_only = relay_only;
        crate::call::engine::rtc_configuration(Some(&config))
    }

    async fn offer(pc: &RtcPeerConnection) -> Result<RtcSessionDescriptionInit, JsValue> {
        let offer = JsFuture::from(pc.create_offer()).await?;
        let offer: RtcSessionDescriptionInit = offer.unchecked_into();
        JsFuture::from(pc.set_local_description(&offer)).await?;
        Ok(offer)
    }

    /// Gathers candidates with every server; counts them by type.
    async fn gather(config: &IceConfig) -> (u32, u32, u32) {
        let Ok(pc) = RtcPeerConnection::new_with_configuration(&configuration(config, false))
        else {
            return (0, 0, 0);
        };
        let found = Rc::new(RefCell::new(Vec::<String>::new()));
        let sink = found.clone();
        let on_candidate = Closure::<dyn FnMut(RtcPeerConnectionIceEvent)>::new(
            move |event: RtcPeerConnectionIceEvent| {
                if let Some(candidate) = event.candidate() {
                    sink.borrow_mut().push(candidate.candidate());
                }
            },
        );
        pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
        let _channel = pc.create_data_channel("probe");
        if offer(&pc).await.is_ok() {
            let started = now();
            while pc.ice_gathering_state() != RtcIceGatheringState::Complete
                && now() - started < f64::from(GATHER_MS)
            {
                sleep(200).await;
            }
        }
        pc.set_onicecandidate(None);
        pc.close();
        let count = |kind: &str| {
            found
                .borrow()
                .iter()
                .filter(|c| candidate_type(c) == Some(kind))
                .count() as u32
        };
        (count("host"), count("srflx"), count("relay"))
    }

    /// A call from this page to itself with relay candidates only; the
    /// round trip of one message over it.
    async fn relay_call(config: &IceConfig) -> Result<u32, String> {
        let make = || {
            RtcPeerConnection::new_with_configuration(&configuration(config, true))
                .map_err(|_| "cannot create a connection".to_string())
        };
        let (caller, callee) = (make()?, make()?);
        let mut callbacks: Vec<Closure<dyn FnMut(JsValue)>> = Vec::new();
        for (from, to) in [(&caller, &callee), (&callee, &caller)] {
            let to = to.clone();
            let trickle = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                let event: RtcPeerConnectionIceEvent = event.unchecked_into();
                if let Some(candidate) = event.candidate() {
                    let _ = to.add_ice_candidate_with_opt_rtc_ice_candidate(Some(&candidate));
                }
            });
            from.set_onicecandidate(Some(trickle.as_ref().unchecked_ref()));
            callbacks.push(trickle);
        }
        // The far side echoes what it gets.
        let echo = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let channel = event.unchecked_into::<RtcDataChannelEvent>().channel();
            let reply = channel.clone();
            let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
                move |message: web_sys::MessageEvent| {
                    if let Some(text) = message.data().as_string() {
                        let _ = reply.send_with_str(&text);
                    }
                },
            );
            channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            on_message.forget();
        });
        callee.set_ondatachannel(Some(echo.as_ref().unchecked_ref()));
        callbacks.push(echo);

        let channel: RtcDataChannel = caller.create_data_channel("probe");
        let sent_at = Rc::new(RefCell::new(None::<f64>));
        let round_trip = Rc::new(RefCell::new(None::<f64>));
        let (opened_sent, opened_channel) = (sent_at.clone(), channel.clone());
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            *opened_sent.borrow_mut() = Some(now());
            let _ = opened_channel.send_with_str("moim self-test");
        });
        channel.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        callbacks.push(on_open);
        let (answered_sent, answered) = (sent_at.clone(), round_trip.clone());
        let on_answer = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(sent) = *answered_sent.borrow() {
                *answered.borrow_mut() = Some(now() - sent);
            }
        });
        channel.set_onmessage(Some(on_answer.as_ref().unchecked_ref()));
        callbacks.push(on_answer);

        let result = async {
            let offered = offer(&caller)
                .await
                .map_err(|_| "offer failed".to_string())?;
            JsFuture::from(callee.set_remote_description(&offered))
                .await
                .map_err(|_| "offer refused".to_string())?;
            let answer = JsFuture::from(callee.create_answer())
                .await
                .map_err(|_| "no answer".to_string())?;
            let answer: RtcSessionDescriptionInit = answer.unchecked_into();
            JsFuture::from(callee.set_local_description(&answer))
                .await
                .map_err(|_| "answer refused".to_string())?;
            JsFuture::from(caller.set_remote_description(&answer))
                .await
                .map_err(|_| "answer refused".to_string())?;
            let started = now();
            while round_trip.borrow().is_none() && now() - started < f64::from(RELAY_CALL_MS) {
                sleep(100).await;
            }
            let rtt = *round_trip.borrow();
            rtt.map(|ms| ms.round() as u32)
                .ok_or_else(|| "no connection through the relay".to_string())
        }
        .await;
        for pc in [&caller, &callee] {
            pc.set_onicecandidate(None);
            pc.set_ondatachannel(None);
            pc.close();
        }
        drop(callbacks);
        result
    }

    pub async fn network(config: &IceConfig) -> NetworkFindings {
        let turn_configured = config.ice_servers.iter().any(|server| {
            server
                .urls
                .iter()
                .any(|u| u.starts_with("turn:") || u.starts_with("turns:"))
        });
        let (host, srflx, relay) = gather(config).await;
        let relay_call = if turn_configured {
            Some(relay_call(config).await)
        } else {
            None
        };
        NetworkFindings {
            host,
            srflx,
            relay,
            turn_configured,
            relay_call,
        }
    }
}

//! The meetings list, the schedule and edit forms, and a meeting's page.

use super::meeting_frame::WithMeeting;
use super::require_user::RequireUser;
use crate::components::{error_of, field_problem_text, form_error_text, text, Field, FormError};
use crate::form_echo::echo_for;
use crate::i18n::*;
use crate::meetings::{
    CancelMeeting, MediaMode, Meeting, Role, ScheduleMeeting, SetCohosts, UpdateMeeting,
    PARTICIPANTS_DEFAULT, PARTICIPANTS_MAX, PARTICIPANTS_MIN,
};
use crate::time::{now_ms, LocalTime};
use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_i18n::I18nContext;
use leptos_meta::Title;
use leptos_router::components::A;

#[component]
pub fn MeetingsPage() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, meetings_title).to_string()) />
        <RequireUser content=move |_user| view! { <MeetingLists /> } />
    }
}

#[component]
fn MeetingLists() -> impl IntoView {
    let i18n = use_i18n();
    let lists = Resource::new(|| (), |_| crate::meetings::list_meetings());
    let instant = ServerAction::<ScheduleMeeting>::new();
    let instant_error = error_of(instant.value());
    view! {
        <section>
            <div class="page-head">
                <h1 data-testid="meetings-title">{t!(i18n, meetings_title)}</h1>
                <div class="page-actions">
                    <ActionForm action=instant attr:class="inline-form">
                        <input type="hidden" name="title" value=move || t_string!(i18n, meetings_instant_title).to_string() />
                        <input type="hidden" name="instant" value="1" />
                        <input type="hidden" name="waiting_room" value="on" />
                        <input type="hidden" name="allow_guests" value="on" />
                        <button type="submit" class="button button-secondary" data-testid="instant-meeting">
                            {t!(i18n, meetings_instant)}
                        </button>
                    </ActionForm>
                    <A href="/meetings/new" attr:class="button" attr:data-testid="schedule-link">{t!(i18n, meetings_schedule)}</A>
                </div>
            </div>
            <FormError error=instant_error />
            <Suspense fallback=move || view! { <p class="muted">{t!(i18n, loading)}</p> }>
                {move || Suspend::new(async move {
                    match lists.await {
                        Ok(lists) => Either::Left(view! {
                            <h2>{t!(i18n, meetings_upcoming)}</h2>
                            {if lists.upcoming.is_empty() {
                                Either::Left(view! { <p class="muted">{t!(i18n, meetings_empty_upcoming)}</p> })
                            } else {
                                Either::Right(view! {
                                    <ul class="meeting-list" data-testid="upcoming">
                                        {lists.upcoming.into_iter().map(|m| view! { <MeetingCard meeting=m now=lists.now_ms /> }).collect_view()}
                                    </ul>
                                })
                            }}
                            <h2>{t!(i18n, meetings_past)}</h2>
                            {if lists.past.is_empty() {
                                Either::Left(view! { <p class="muted">{t!(i18n, meetings_empty_past)}</p> })
                            } else {
                                Either::Right(view! {
                                    <ul class="meeting-list" data-testid="past">
                                        {lists.past.into_iter().map(|m| view! { <MeetingCard meeting=m now=lists.now_ms /> }).collect_view()}
                                    </ul>
                                })
                            }}
                        }),
                        Err(err) => Either::Right(view! {
                            <p class="form-error" role="alert">{form_error_text(i18n, &err)}</p>
                        }),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn RoleBadge(role: Role) -> impl IntoView {
    let i18n = use_i18n();
    match role {
        Role::Host => {
            Some(view! { <span class="badge">{t!(i18n, meeting_role_host)}</span> }.into_any())
        }
        Role::CoHost => {
            Some(view! { <span class="badge">{t!(i18n, meeting_role_cohost)}</span> }.into_any())
        }
        Role::Invitee => {
            Some(view! { <span class="badge">{t!(i18n, meeting_role_invitee)}</span> }.into_any())
        }
        Role::Visitor => None,
    }
}

#[component]
fn JoinButton(meeting: Meeting, now: i64) -> impl IntoView {
    let i18n = use_i18n();
    let path = format!("{}/join", meeting.path());
    if meeting.joinable_at(now) {
        EitherOf3::A(
            view! { <A href=path attr:class="button" attr:data-testid="join">{t!(i18n, meeting_join)}</A> },
        )
    } else if now >= meeting.ends_at_ms() {
        EitherOf3::B(view! { <span class="muted small">{t!(i18n, meeting_over)}</span> })
    } else {
        EitherOf3::C(view! {
            <span class="join-later">
                <button type="button" class="button" disabled=true data-testid="join">{t!(i18n, meeting_join)}</button>
                <span class="muted small">{t!(i18n, meeting_join_later)}</span>
            </span>
        })
    }
}

#[component]
fn MeetingCard(meeting: Meeting, now: i64) -> impl IntoView {
    let i18n = use_i18n();
    let minutes = meeting.duration_minutes;
    let cancelled = meeting.cancelled;
    let path = meeting.path();
    let title = meeting.title.clone();
    let join = (!cancelled).then(|| view! { <JoinButton meeting=meeting.clone() now /> });
    view! {
        <li class="card meeting-card" class:cancelled=cancelled data-testid="meeting-card">
            <div class="meeting-main">
                <h3>
                    {if cancelled {
                        Either::Left(view! { <span>{title}</span> })
                    } else {
                        Either::Right(view! { <A href=path>{title}</A> })
                    }}
                </h3>
                <p class="meeting-meta">
                    <LocalTime ms=meeting.starts_at_ms />
                    " · " {t!(i18n, meeting_duration, minutes = minutes)}
                    " · " {t!(i18n, meeting_host)} ": " {meeting.host_name.clone()}
                    " " <RoleBadge role=meeting.role />
                    {cancelled.then(|| view! { " " <span class="badge badge-danger">{t!(i18n, meeting_cancelled)}</span> })}
                </p>
            </div>
            {join}
        </li>
    }
}

#[component]
pub fn NewMeetingPage() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, meeting_new_title).to_string()) />
        <RequireUser content=move |_user| view! {
            <section class="narrow">
                <h1>{t!(i18n, meeting_new_title)}</h1>
                <MeetingEditor existing=None />
            </section>
        } />
    }
}

/// Before the page's code has loaded, shows the start in the viewer's own
/// zone and says which zone that is, so a form sent early still means the
/// time the person saw. It runs once, where it stands in the page, on the
/// inputs just before it; the page's code later takes over the same fields.
#[component]
fn LocalStartScript() -> impl IntoView {
    const SCRIPT: &str = "(function(){try{\
var s=document.currentScript,f=s.parentNode,\
z=Intl.DateTimeFormat().resolvedOptions().timeZone,\
l=f.querySelector('[name=starts_local]'),m=f.querySelector('[name=starts_at_ms]'),\
t=f.querySelector('[name=time_zone]');if(!z||!l||!m||!t)return;\
var d=new Date(Number(m.value));if(isNaN(d))return;\
function p(n){return String(n).padStart(2,'0')}\
l.value=d.getFullYear()+'-'+p(d.getMonth()+1)+'-'+p(d.getDate())+'T'+p(d.getHours())+':'+p(d.getMinutes());\
t.value=z;var h=document.getElementById('field-starts-zone');\
if(h&&h.dataset.template)h.textContent=h.dataset.template.replace('{zone}',z);\
document.cookie='moim_tz='+encodeURIComponent(z)+';path=/;max-age=31536000;samesite=lax';\
}catch(e){}})()";
    let nonce = leptos::nonce::use_nonce();
    // Only the server's copy runs. When the page's code draws this form
    // itself (moving here from another page), the inputs are its own
    // already; a script it inserted would run without the response's
    // nonce, which the Content-Security-Policy refuses.
    #[cfg(feature = "ssr")]
    let kind: Option<&'static str> = None;
    #[cfg(not(feature = "ssr"))]
    let kind = Some("text/plain");
    view! { <script nonce=nonce type=kind inner_html=SCRIPT></script> }
}

/// The schedule form, or the edit form when `existing` is given.
#[component]
fn MeetingEditor(existing: Option<Meeting>) -> impl IntoView {
    let i18n = use_i18n();
    let schedule = ServerAction::<ScheduleMeeting>::new();
    let update = ServerAction::<UpdateMeeting>::new();
    let error = Signal::derive(move || {
        error_of(schedule.value())
            .get()
            .or_else(|| error_of(update.value()).get())
    });
    let pending = Signal::derive(move || schedule.pending().get() || update.pending().get());

    // The start as UTC milliseconds, kept in step with the local-time input.
    // The server renders both (in the zone the viewer's cookie names, else
    // UTC) so that the form also works before the page is interactive; the
    // browser then shows its own zone.
    let initial_ms = existing.as_ref().map_or_else(
        || {
            let hour = 3_600_000;
            (now_ms() / hour + 1) * hour
        },
        |m| m.starts_at_ms,
    );
    let starts_at_ms = RwSignal::new(initial_ms.to_string());
    // What was sent, when this form came back refused as a plain post: the
    // form shows it again rather than the meeting's stored values.
    let echo = echo_for(error);
    let echoed_start = echo.as_ref().and_then(|echo| {
        let local = echo.value("starts_local").filter(|v| !v.is_empty())?;
        Some((
            local.to_string(),
            echo.value("time_zone").unwrap_or("UTC").to_string(),
        ))
    });
    #[cfg(feature = "ssr")]
    let (server_zone, server_local) = match echoed_start.clone() {
        Some((local, zone)) => (zone, local),
        None => {
            let zone = crate::time::zone::from_request().unwrap_or_else(|| "UTC".to_string());
            let local = crate::time::zone::local_input(initial_ms, &zone).unwrap_or_default();
            (zone, local)
        }
    };
    #[cfg(not(feature = "ssr"))]
    let (server_zone, server_local) = echoed_start
        .clone()
        .map(|(local, zone)| (zone, local))
        .unwrap_or_default();
    let zone = RwSignal::new(server_zone);
    let local_value = RwSignal::new(server_local.clone());
    #[cfg(feature = "hydrate")]
    {
        Effect::new(move |_| {
            // The local time as sent (in the zone it was sent in) stays as
            // it was typed; otherwise the browser shows its own zone.
            if echoed_start.is_some() {
                return;
            }
            local_value.set(crate::time::ms_to_local_input(initial_ms));
            starts_at_ms.set(initial_ms.to_string());
            if let Some(browser_zone) = crate::time::browser_zone() {
                zone.set(browser_zone);
            }
        });
    }
    let on_local_input = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        local_value.set(value.clone());
        #[cfg(feature = "hydrate")]
        starts_at_ms.set(
            crate::time::local_input_to_ms(&value)
                .map(|ms| ms.to_string())
                .unwrap_or_default(),
        );
    };
    let starts_problem = move || error.get().and_then(|e| e.field_problem("starts_at_ms"));
    let description_problem = move || error.get().and_then(|e| e.field_problem("description"));

    let title = existing
        .as_ref()
        .map(|m| m.title.clone())
        .unwrap_or_default();
    let description = match &echo {
        Some(echo) => echo.value("description").unwrap_or_default().to_string(),
        None => existing
            .as_ref()
            .map(|m| m.description.clone())
            .unwrap_or_default(),
    };
    let duration = existing
        .as_ref()
        .map_or(60, |m| m.duration_minutes)
        .to_string();
    let invitees = existing
        .as_ref()
        .map(|m| m.invitees.join(", "))
        .unwrap_or_default();
    let (waiting_room, allow_guests) = match &echo {
        Some(echo) => (
            echo.is_checked("waiting_room"),
            echo.is_checked("allow_guests"),
        ),
        None => (
            existing.as_ref().is_none_or(|m| m.waiting_room),
            existing.as_ref().is_none_or(|m| m.allow_guests),
        ),
    };
    let max_participants = existing
        .as_ref()
        .map_or(PARTICIPANTS_DEFAULT, |m| m.max_participants)
        .to_string();
    let media_mode = echo
        .as_ref()
        .and_then(|echo| MediaMode::parse(echo.value("media_mode")?))
        .or_else(|| existing.as_ref().map(|m| m.media_mode))
        .unwrap_or_default();
    let media_problem = move || error.get().and_then(|e| e.field_problem("media_mode"));
    let code = existing.as_ref().map(|m| m.code.clone());
    let is_edit = code.is_some();

    let fields = view! {
        {code.map(|code| view! { <input type="hidden" name="code" value=code /> })}
        <Field
            name="title"
            label=text(move || t_string!(i18n, field_title).to_string())
            required=true
            maxlength=crate::meetings::TITLE_MAX
            value=Signal::stored(title)
            error=error
        />
        <div class="field" class:field-invalid=move || description_problem().is_some()>
            <label for="field-description">{t!(i18n, field_description)}</label>
            <textarea id="field-description" name="description" rows="3" maxlength=crate::meetings::DESCRIPTION_MAX>{description}</textarea>
            <p class="field-error" role="alert" data-field-error="description">
                {move || description_problem().map(|p| field_problem_text(i18n, p))}
            </p>
        </div>
        <div class="field" class:field-invalid=move || starts_problem().is_some()>
            <label for="field-starts">{t!(i18n, field_starts)}</label>
            <input
                id="field-starts"
                type="datetime-local"
                name="starts_local"
                required=true
                value=server_local
                prop:value=move || local_value.get()
                on:input=on_local_input
                aria-describedby="field-starts-zone field-starts-error"
                aria-invalid=move || if starts_problem().is_some() { "true" } else { "false" }
            />
            <input type="hidden" name="starts_at_ms" value=move || starts_at_ms.get() />
            <input type="hidden" name="time_zone" value=move || zone.get() data-testid="time-zone" />
            <LocalStartScript />
            <p class="field-hint" id="field-starts-zone" data-testid="starts-zone"
                data-template=move || t_string!(i18n, field_starts_zone, zone = "{zone}").to_string()>
                {move || t_string!(i18n, field_starts_zone, zone = zone.get()).to_string()}
            </p>
            <p class="field-error" id="field-starts-error" role="alert" data-field-error="starts_at_ms">
                {move || starts_problem().map(|p| field_problem_text(i18n, p))}
            </p>
        </div>
        <Field
            name="duration_minutes"
            input_type="number"
            label=text(move || t_string!(i18n, field_duration).to_string())
            required=true
            value=Signal::stored(duration)
            error=error
        />
        <Field
            name="invitees"
            label=text(move || t_string!(i18n, meeting_invitees).to_string())
            hint=text(move || t_string!(i18n, meeting_invitees_hint).to_string())
            value=Signal::stored(invitees)
            error=error
        />
        <InviteesMailNote />
        <fieldset class="settings">
            <legend>{t!(i18n, meeting_settings)}</legend>
            <label class="check">
                <input type="checkbox" name="waiting_room" checked=waiting_room />
                {t!(i18n, meeting_waiting_room)}
            </label>
            <label class="check">
                <input type="checkbox" name="allow_guests" checked=allow_guests />
                {t!(i18n, meeting_allow_guests)}
            </label>
            <Field
                name="max_participants"
                input_type="number"
                label=text(move || t_string!(i18n, meeting_max_participants).to_string())
                hint=text(move || format!("{PARTICIPANTS_MIN}–{PARTICIPANTS_MAX}"))
                value=Signal::stored(max_participants)
                error=error
            />
            <div class="field" class:field-invalid=move || media_problem().is_some()>
                <label for="field-media-mode">{t!(i18n, meeting_media)}</label>
                <select id="field-media-mode" name="media_mode" aria-describedby="field-media-mode-hint field-media-mode-error">
                    {MediaMode::ALL.into_iter().map(|mode| view! {
                        <option value=mode.as_str() selected=mode == media_mode>{media_mode_text(i18n, mode)}</option>
                    }).collect_view()}
                </select>
                <p class="field-hint" id="field-media-mode-hint">{t!(i18n, meeting_media_hint)}</p>
                <p class="field-error" role="alert" id="field-media-mode-error" data-field-error="media_mode">
                    {move || media_problem().map(|p| field_problem_text(i18n, p))}
                </p>
            </div>
        </fieldset>
        <FormError error=error />
        <button type="submit" class="button" disabled=move || pending.get() data-testid="meeting-submit">
            {move || if is_edit {
                t_string!(i18n, update_submit).to_string()
            } else {
                t_string!(i18n, schedule_submit).to_string()
            }}
        </button>
    };
    if is_edit {
        Either::Left(
            view! { <ActionForm action=update attr:novalidate=true attr:data-testid="meeting-form">{fields}</ActionForm> },
        )
    } else {
        Either::Right(
            view! { <ActionForm action=schedule attr:novalidate=true attr:data-testid="meeting-form">{fields}</ActionForm> },
        )
    }
}

fn or_dash(text: String) -> String {
    if text.is_empty() {
        "—".to_string()
    } else {
        text
    }
}

#[component]
pub fn MeetingPage() -> impl IntoView {
    view! { <WithMeeting content=|m| view! { <MeetingDetails meeting=m /> } /> }
}

#[component]
fn MeetingDetails(meeting: Meeting) -> impl IntoView {
    let i18n = use_i18n();
    let copied = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    let link = meeting.link.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let window = web_sys::window();
            let write = window
                .and_then(|w| js_sys::Reflect::get(&w, &"navigator".into()).ok())
                .and_then(|n| js_sys::Reflect::get(&n, &"clipboard".into()).ok())
                .and_then(|c| {
                    let f = js_sys::Reflect::get(&c, &"writeText".into()).ok()?;
                    Some((c, f.dyn_into::<js_sys::Function>().ok()?))
                });
            if let Some((clipboard, write_text)) = write {
                let _ = write_text.call1(&clipboard, &link.clone().into());
                copied.set(true);
            }
        }
    };
    let minutes = meeting.duration_minutes;
    let on_off = move |on: bool| {
        if on {
            t_string!(i18n, meeting_on).to_string()
        } else {
            t_string!(i18n, meeting_off).to_string()
        }
    };
    let cancel = ServerAction::<CancelMeeting>::new();
    let set_cohosts = ServerAction::<SetCohosts>::new();
    let cohost_error = error_of(set_cohosts.value());
    let cohost_saved = move || matches!(set_cohosts.value().get(), Some(Ok(())));
    let title = meeting.title.clone();
    let is_host = meeting.role == Role::Host;
    let can_edit = meeting.can_edit();
    let code = meeting.code.clone();
    let cancel_code = meeting.code.clone();
    let cohosts = meeting.cohosts.join(", ");
    let edit_path = format!("{}/edit", meeting.path());
    view! {
        <Title text=title />
        <section class="narrow meeting-page">
            <p class="eyebrow">
                <RoleBadge role=meeting.role />
            </p>
            <h1 data-testid="meeting-title">{meeting.title.clone()}</h1>
            <p class="meeting-meta">
                <LocalTime ms=meeting.starts_at_ms />
                " · " {t!(i18n, meeting_duration, minutes = minutes)}
                " · " {t!(i18n, meeting_host)} ": " <span data-testid="meeting-host">{meeting.host_name.clone()}</span>
            </p>
            {(!meeting.description.is_empty()).then(|| view! {
                <p class="meeting-description" data-testid="meeting-description">{meeting.description.clone()}</p>
            })}
            <div class="join-row">
                <JoinButton meeting=meeting.clone() now=now_ms() />
                <a class="button button-secondary" href=format!("{}/invite.ics", meeting.path()) download="meeting.ics" rel="nofollow">
                    {t!(i18n, meeting_ics)}
                </a>
            </div>
            <div class="card">
                <label for="meeting-link"><strong>{t!(i18n, meeting_link_label)}</strong></label>
                <div class="link-row">
                    <input id="meeting-link" readonly=true value=meeting.link.clone() data-testid="meeting-link" />
                    <button type="button" class="button button-secondary" on:click=copy>{t!(i18n, meeting_copy_link)}</button>
                </div>
                <p class="form-ok" role="status">{move || copied.get().then(|| t_string!(i18n, meeting_link_copied).to_string())}</p>
            </div>
            <div class="card">
                <h2>{t!(i18n, meeting_settings)}</h2>
                <dl class="facts">
                    <dt>{t!(i18n, meeting_waiting_room)}</dt><dd>{on_off(meeting.waiting_room)}</dd>
                    <dt>{t!(i18n, meeting_allow_guests)}</dt><dd>{on_off(meeting.allow_guests)}</dd>
                    <dt>{t!(i18n, meeting_max_participants)}</dt><dd>{meeting.max_participants}</dd>
                    <dt>{t!(i18n, meeting_media)}</dt><dd data-testid="meeting-media">{media_mode_text(i18n, meeting.media_mode)}</dd>
                    <dt>{t!(i18n, meeting_invitees)}</dt><dd data-testid="meeting-invitees">{or_dash(meeting.invitees.join(", "))}</dd>
                    <dt>{t!(i18n, meeting_cohosts)}</dt><dd data-testid="meeting-cohosts">{or_dash(meeting.cohosts.join(", "))}</dd>
                </dl>
            </div>
            <ChatTranscript code=code.clone() path=meeting.path() />
            {can_edit.then(|| view! { <super::lobby::KnockPanel code=code.clone() /> })}
            {is_host.then(|| view! {
                <div class="card">
                    <h2>{t!(i18n, meeting_cohosts)}</h2>
                    <ActionForm action=set_cohosts attr:novalidate=true attr:data-testid="cohosts-form">
                        <input type="hidden" name="code" value=code.clone() />
                        <Field
                            name="cohosts"
                            label=text(move || t_string!(i18n, meeting_cohosts).to_string())
                            hint=text(move || t_string!(i18n, meeting_cohosts_hint).to_string())
                            value=Signal::stored(cohosts.clone())
                            error=cohost_error
                        />
                        <FormError error=cohost_error />
                        <p class="form-ok" role="status">{move || cohost_saved().then(|| t_string!(i18n, saved).to_string())}</p>
                        <button type="submit" class="button button-secondary">{t!(i18n, meeting_save_cohosts)}</button>
                    </ActionForm>
                </div>
            })}
            {can_edit.then(|| view! {
                <div class="owner-actions">
                    <A href=edit_path.clone() attr:class="button button-secondary" attr:data-testid="edit-meeting">
                        {t!(i18n, meeting_edit)}
                    </A>
                    <details class="danger-zone">
                        <summary>{t!(i18n, meeting_cancel)}</summary>
                        <p>{t!(i18n, meeting_cancel_confirm)}</p>
                        <ActionForm action=cancel>
                            <input type="hidden" name="code" value=cancel_code.clone() />
                            <button type="submit" class="button button-danger" data-testid="cancel-meeting">{t!(i18n, meeting_cancel)}</button>
                        </ActionForm>
                    </details>
                </div>
            })}
        </section>
    }
}

#[component]
pub fn EditMeetingPage() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, meeting_edit_title).to_string()) />
        <RequireUser content=move |_user| view! {
            <WithMeeting content=move |m| {
                if m.can_edit() {
                    Either::Left(view! {
                        <section class="narrow">
                            <h1>{t!(i18n, meeting_edit_title)}</h1>
                            <MeetingEditor existing=Some(m) />
                        </section>
                    })
                } else {
                    Either::Right(view! { <p class="form-error" role="alert">{t!(i18n, err_forbidden)}</p> })
                }
            } />
        } />
    }
}

/// The chat of a finished meeting, for its participants.
#[component]
fn ChatTranscript(code: String, path: String) -> impl IntoView {
    let i18n = use_i18n();
    let transcript = Resource::new(move || code.clone(), crate::chat::chat_transcript);
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let path = path.clone();
                Suspend::new(async move {
                    match transcript.await {
                        Ok(crate::chat::Transcript::Ready { messages, viewer_id }) => Some(view! {
                            <section class="card transcript" data-testid="transcript">
                                <h2>{t!(i18n, transcript_title)}</h2>
                                {messages.is_empty().then(|| view! { <p class="muted">{t!(i18n, transcript_empty)}</p> })}
                                <ol class="chat-list">
                                    {messages.into_iter().map(|m| {
                                        let mine = m.sender_id == viewer_id;
                                        let entry = crate::call::ChatEntry {
                                            key: m.key,
                                            seq: Some(m.seq),
                                            sender_id: m.sender_id,
                                            sender_name: m.sender_name,
                                            text: m.text,
                                            sent_at_ms: Some(m.sent_at_ms),
                                            to_id: m.to_id,
                                            to_name: m.to_name,
                                            mine,
                                            status: crate::call::ChatStatus::Sent,
                                        };
                                        view! { <super::room::ChatLine entry /> }
                                    }).collect_view()}
                                </ol>
                                <p class="join-row">
                                    <a class="button button-secondary" href=format!("{path}/chat.txt") download="chat.txt" rel="external" data-testid="transcript-txt">{t!(i18n, transcript_download_txt)}</a>
                                    <a class="button button-secondary" href=format!("{path}/chat.md") download="chat.md" rel="external" data-testid="transcript-md">{t!(i18n, transcript_download_md)}</a>
                                </p>
                            </section>
                        }),
                        _ => None,
                    }
                })
            }}
        </Suspense>
    }
}

/// Says what inviting an address does here: with a mail server it gets the
/// link; without one nobody is told, and an address lets someone in only
/// once an account has confirmed it.
#[component]
fn InviteesMailNote() -> impl IntoView {
    let i18n = use_i18n();
    let configured = Resource::new(|| (), |_| crate::auth::mail_configured());
    view! {
        <Transition fallback=|| ()>
            {move || configured.get().map(|configured| {
                let configured = matches!(configured, Ok(true));
                view! {
                    <p class="muted field-note" data-testid="invitees-mail-note"
                        data-mail=if configured { "on" } else { "off" }>
                        {move || if configured {
                            t_string!(i18n, meeting_invitees_mail_note).to_string()
                        } else {
                            t_string!(i18n, meeting_invitees_no_mail_note).to_string()
                        }}
                    </p>
                }
            })}
        </Transition>
    }
}

/// A meeting's media setting, in words.
fn media_mode_text(i18n: I18nContext<Locale>, mode: MediaMode) -> String {
    match mode {
        MediaMode::Automatic => t_string!(i18n, meeting_media_automatic).to_string(),
        MediaMode::Direct => t_string!(i18n, meeting_media_direct).to_string(),
        MediaMode::Server => t_string!(i18n, meeting_media_server).to_string(),
    }
}

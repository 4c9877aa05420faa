//! Pieces used across pages: the header, the language switch, form fields
//! and the shared sign-in state.

use crate::auth::{
    ChangePassword, ContinueAsGuest, SignIn, SignOut, SignUp, UpdateProfile, Viewer,
};
use crate::error::{ApiError, FieldProblem, Limit};
use crate::i18n::*;
use leptos::either::Either;
use leptos::prelude::*;
use leptos_i18n::I18nContext;
use leptos_router::components::A;

pub type ViewerResource = Resource<Result<Option<Viewer>, ApiError>>;

/// The account actions and the viewer they change, shared by every page so
/// the header follows a sign-in or sign-out at once.
#[derive(Clone, Copy)]
pub struct AuthContext {
    pub viewer: ViewerResource,
    pub sign_in: ServerAction<SignIn>,
    pub sign_up: ServerAction<SignUp>,
    pub sign_out: ServerAction<SignOut>,
    pub guest: ServerAction<ContinueAsGuest>,
    pub update_profile: ServerAction<UpdateProfile>,
    pub change_password: ServerAction<ChangePassword>,
}

pub fn provide_auth_context() {
    // These actions live above the router, which is what hands a plain
    // form post's error (`?__path=…&__err=…` after the redirect back) to
    // the actions it creates: give it to these too, so a sign-in refused
    // before the page was interactive still shows why.
    if let Some(error) = plain_post_error() {
        provide_context(error);
    }
    let sign_in = ServerAction::<SignIn>::new();
    let sign_up = ServerAction::<SignUp>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let guest = ServerAction::<ContinueAsGuest>::new();
    let update_profile = ServerAction::<UpdateProfile>::new();
    let change_password = ServerAction::<ChangePassword>::new();
    let viewer = Resource::new(
        move || {
            (
                sign_in.version().get(),
                sign_up.version().get(),
                sign_out.version().get(),
                guest.version().get(),
                update_profile.version().get(),
                change_password.version().get(),
            )
        },
        |_| crate::auth::current_viewer(),
    );
    provide_context(AuthContext {
        viewer,
        sign_in,
        sign_up,
        sign_out,
        guest,
        update_profile,
        change_password,
    });
}

/// The error a plain form post came back with, from this page's address.
fn plain_post_error() -> Option<leptos::server::ServerActionError> {
    #[cfg(feature = "ssr")]
    let pairs: Vec<(String, String)> = {
        let parts = use_context::<http::request::Parts>()?;
        url::form_urlencoded::parse(parts.uri.query()?.as_bytes())
            .into_owned()
            .collect()
    };
    #[cfg(not(feature = "ssr"))]
    let pairs: Vec<(String, String)> = {
        let search = window().location().search().ok()?;
        search
            .trim_start_matches('?')
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter_map(|(key, value)| {
                let value = js_sys::decode_uri_component(&value.replace('+', " ")).ok()?;
                Some((key.to_string(), String::from(value)))
            })
            .collect()
    };
    let find = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    Some(leptos::server::ServerActionError::new(
        &find("__path")?,
        &find("__err")?,
    ))
}

pub fn use_auth() -> AuthContext {
    expect_context::<AuthContext>()
}

/// The text for a field problem, in the reader's language.
pub fn field_problem_text(i18n: I18nContext<Locale>, problem: FieldProblem) -> String {
    match problem {
        FieldProblem::Required => t_string!(i18n, err_required).to_string(),
        FieldProblem::TooShort => t_string!(i18n, err_too_short).to_string(),
        FieldProblem::TooLong => t_string!(i18n, err_too_long).to_string(),
        FieldProblem::InvalidChars => t_string!(i18n, err_invalid_chars).to_string(),
        FieldProblem::ControlChars => t_string!(i18n, err_control_chars).to_string(),
        FieldProblem::UsernameTaken => t_string!(i18n, err_username_taken).to_string(),
        FieldProblem::EmailTaken => t_string!(i18n, err_email_taken).to_string(),
        FieldProblem::EmailInvalid => t_string!(i18n, err_email_invalid).to_string(),
        FieldProblem::WrongCurrentPassword => {
            t_string!(i18n, err_wrong_current_password).to_string()
        }
        FieldProblem::OutOfRange => t_string!(i18n, err_out_of_range).to_string(),
        FieldProblem::InThePast => t_string!(i18n, err_in_the_past).to_string(),
        FieldProblem::UnknownInvitees(names) => {
            let names = names.join(", ");
            t_string!(i18n, err_unknown_invitees, names = names).to_string()
        }
        FieldProblem::UrlInvalid => t_string!(i18n, err_url_invalid).to_string(),
        FieldProblem::UrlPrivate => t_string!(i18n, err_url_private).to_string(),
    }
}

/// The text for an error that is not about one field (None for field errors,
/// which are shown next to their fields).
pub fn form_error_text(i18n: I18nContext<Locale>, err: &ApiError) -> Option<String> {
    Some(match err {
        ApiError::Invalid(_) => return None,
        ApiError::BadCredentials => t_string!(i18n, err_bad_credentials).to_string(),
        ApiError::TooManyAttempts { retry_after_secs } => {
            let minutes = retry_after_secs.div_ceil(60);
            t_string!(i18n, err_too_many_attempts, minutes = minutes).to_string()
        }
        ApiError::Limited {
            what,
            retry_after_secs,
        } => {
            let minutes = retry_after_secs.div_ceil(60);
            match what {
                Limit::SignUps => {
                    t_string!(i18n, err_too_many_sign_ups, minutes = minutes).to_string()
                }
                Limit::Guests => {
                    t_string!(i18n, err_too_many_guests, minutes = minutes).to_string()
                }
                Limit::Knocks => {
                    t_string!(i18n, err_too_many_knocks, minutes = minutes).to_string()
                }
                Limit::WaitingRoomFull => t_string!(i18n, err_waiting_room_full).to_string(),
                Limit::ApiTokens => t_string!(i18n, err_too_many_api_tokens).to_string(),
                Limit::Webhooks => t_string!(i18n, err_too_many_webhooks).to_string(),
                Limit::SelfTests => t_string!(i18n, err_too_many_self_tests).to_string(),
            }
        }
        ApiError::Unauthenticated => t_string!(i18n, err_sign_in_required).to_string(),
        ApiError::Forbidden => t_string!(i18n, err_forbidden).to_string(),
        ApiError::NotFound => t_string!(i18n, err_not_found).to_string(),
        ApiError::NotOpen { .. } => t_string!(i18n, err_not_open).to_string(),
        ApiError::Ended => t_string!(i18n, err_ended).to_string(),
        ApiError::Internal => t_string!(i18n, err_internal).to_string(),
        ApiError::Transport(_) => t_string!(i18n, err_network).to_string(),
    })
}

/// The error of an action's last run, if it failed.
pub fn error_of<S, O>(value: S) -> Signal<Option<ApiError>>
where
    S: Get<Value = Option<Result<O, ApiError>>> + Send + Sync + 'static,
    O: 'static,
{
    Signal::derive(move || value.get().and_then(|r| r.err()))
}

/// A text that follows the language (for component props).
pub fn text(f: impl Fn() -> String + Send + Sync + 'static) -> Signal<String> {
    Signal::derive(f)
}

/// A labelled input with its hint and its error, wired for screen readers.
#[component]
pub fn Field(
    /// The input's `name` (also the field key in server errors).
    name: &'static str,
    label: Signal<String>,
    #[prop(optional)] hint: Option<Signal<String>>,
    #[prop(default = "text")] input_type: &'static str,
    #[prop(optional)] autocomplete: Option<&'static str>,
    #[prop(optional)] required: bool,
    #[prop(optional)] maxlength: Option<usize>,
    #[prop(optional, into)] value: Option<Signal<String>>,
    /// The current error of the form this field is in.
    error: Signal<Option<ApiError>>,
) -> impl IntoView {
    let i18n = use_i18n();
    let id = format!("field-{name}");
    // What the person sent, when this form was refused as a plain post;
    // else the value given.
    let echoed =
        crate::form_echo::echo_for(error).and_then(|echo| echo.value(name).map(str::to_string));
    let initial = echoed
        .or_else(|| value.map(|v| v.get_untracked()))
        .unwrap_or_default();
    let input_ref = NodeRef::<leptos::html::Input>::new();
    // The value is the attribute the server sends; the browser changes the
    // input's value only when the given value changes later (a saved
    // profile), never when the page becomes interactive, which would wipe
    // what someone typed while the page's code was loading.
    if let Some(value) = value {
        Effect::watch(
            move || value.get(),
            move |current, _, _| {
                if let Some(input) = input_ref.get_untracked() {
                    input.set_value(current);
                }
            },
            false,
        );
    }
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let problem = move || error.get().and_then(|e| e.field_problem(name));
    let describedby = {
        let hint_id = hint_id.clone();
        let error_id = error_id.clone();
        move || {
            let mut ids = Vec::new();
            if hint.is_some() {
                ids.push(hint_id.clone());
            }
            if problem().is_some() {
                ids.push(error_id.clone());
            }
            ids.join(" ")
        }
    };
    view! {
        <div class="field" class:field-invalid=move || problem().is_some()>
            <label for=id.clone()>{move || label.get()}</label>
            <input
                id=id.clone()
                name=name
                type=input_type
                autocomplete=autocomplete
                required=required
                maxlength=maxlength.map(|m| m.to_string())
                node_ref=input_ref
                value=initial
                aria-invalid=move || if problem().is_some() { "true" } else { "false" }
                aria-describedby=describedby
            />
            {hint.map(|hint| view! { <p class="field-hint" id=hint_id.clone()>{move || hint.get()}</p> })}
            <p class="field-error" id=error_id.clone() role="alert" data-field-error=name>
                {move || problem().map(|p| field_problem_text(i18n, p))}
            </p>
        </div>
    }
}

/// The error of a whole form (bad credentials, throttling, network).
#[component]
pub fn FormError(error: Signal<Option<ApiError>>) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <p class="form-error" role="alert" data-testid="form-error">
            {move || error.get().and_then(|e| form_error_text(i18n, &e))}
        </p>
    }
}

#[component]
pub fn LanguageSwitch() -> impl IntoView {
    let i18n = use_i18n();
    let toggle = move |_| {
        let next = match i18n.get_locale() {
            Locale::en => Locale::ko,
            Locale::ko => Locale::en,
        };
        i18n.set_locale(next);
    };
    // The other language's name, in that language.
    let other = move || match i18n.get_locale() {
        Locale::en => "ko",
        Locale::ko => "en",
    };
    // Its accessible name is its visible text (WCAG 2.5.3, label in name);
    // the title is a description, in the interface's own language.
    view! {
        <button
            type="button"
            class="lang-switch"
            data-testid="lang-switch"
            on:click=toggle
            title=move || t_string!(i18n, lang_switch_hint).to_string()
        >
            <span lang=other>{t!(i18n, lang_switch)}</span>
        </button>
    }
}

#[component]
pub fn Header() -> impl IntoView {
    let i18n = use_i18n();
    let auth = use_auth();
    let viewer = auth.viewer;
    let sign_out = auth.sign_out;

    let account = move || {
        Suspend::new(async move {
            match viewer.await {
                Ok(Some(viewer)) => {
                    let is_user = !viewer.is_guest();
                    let name = viewer.display_name().to_string();
                    Either::Left(view! {
                        <span class="who" data-testid="viewer-name">
                            {name}
                            {(!is_user).then(|| view! { <span class="badge">{t!(i18n, guest_badge)}</span> })}
                        </span>
                        {is_user.then(|| view! { <A href="/profile">{t!(i18n, nav_profile)}</A> })}
                        <ActionForm action=sign_out attr:class="inline-form">
                            <button type="submit" class="link-button" data-testid="sign-out">
                                {t!(i18n, nav_sign_out)}
                            </button>
                        </ActionForm>
                    })
                }
                _ => Either::Right(view! {
                    <A href="/signin" attr:data-testid="nav-sign-in">{t!(i18n, nav_sign_in)}</A>
                    <A href="/signup" attr:class="button button-small">{t!(i18n, nav_sign_up)}</A>
                }),
            }
        })
    };

    view! {
        <header class="site-header">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true"></span>
                <span class="brand-name">{t!(i18n, app_name)}</span>
            </A>
            <nav aria-label=move || t_string!(i18n, nav_label).to_string() class="site-nav">
                <A href="/meetings">{t!(i18n, nav_meetings)}</A>
            </nav>
            <div class="account">
                <Transition fallback=move || view! { <span class="muted">{t!(i18n, loading)}</span> }>
                    {account}
                </Transition>
                <LanguageSwitch />
            </div>
        </header>
    }
}

//! Sign in, sign up, guest entry and the profile page.

use super::require_user::RequireUser;
use crate::auth::{
    AccountEmail, ApiTokenInfo, CreateApiToken, CreateWebhook, RemoveWebhook, ResendVerification,
    RevokeApiToken, VerifyOutcome, Viewer, WebhookDelivery, WebhookInfo,
};
use crate::components::{error_of, text, use_auth, Field, FormError};
use crate::i18n::*;
use crate::time::LocalTime;
use crate::validate;
use leptos::either::Either;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

/// The `next` query parameter, checked to be a local path.
fn use_next() -> Signal<String> {
    let query = use_query_map();
    Signal::derive(move || {
        validate::safe_next(&query.read().get("next").unwrap_or_else(|| "/".to_string()))
    })
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let i18n = use_i18n();
    let action = use_auth().sign_in;
    let next = use_next();
    let error = error_of(action.value());
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, sign_in_title).to_string()) />
        <section class="narrow auth-card">
            <h1>{t!(i18n, sign_in_title)}</h1>
            <p class="muted">{t!(i18n, sign_in_lead)}</p>
            <ActionForm action=action attr:novalidate=true attr:data-testid="sign-in-form">
                <input type="hidden" name="next" value=move || next.get() />
                <Field
                    name="username"
                    label=text(move || t_string!(i18n, field_username).to_string())
                    autocomplete="username"
                    required=true
                    error=error
                />
                <Field
                    name="password"
                    input_type="password"
                    label=text(move || t_string!(i18n, field_password).to_string())
                    autocomplete="current-password"
                    required=true
                    error=error
                />
                <FormError error=error />
                <button type="submit" class="button" disabled=move || action.pending().get()>
                    {move || if action.pending().get() {
                        t_string!(i18n, submitting).to_string()
                    } else {
                        t_string!(i18n, submit_sign_in).to_string()
                    }}
                </button>
            </ActionForm>
            <p class="switch-auth">
                {t!(i18n, no_account)} " "
                <A href=move || format!("/signup?next={}", validate::encode_query_value(&next.get()))>
                    {t!(i18n, nav_sign_up)}
                </A>
            </p>
        </section>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let i18n = use_i18n();
    let action = use_auth().sign_up;
    let next = use_next();
    let error = error_of(action.value());
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, sign_up_title).to_string()) />
        <section class="narrow auth-card">
            <h1>{t!(i18n, sign_up_title)}</h1>
            <p class="muted">{t!(i18n, sign_up_lead)}</p>
            <ActionForm action=action attr:novalidate=true attr:data-testid="sign-up-form">
                <input type="hidden" name="next" value=move || next.get() />
                <Field
                    name="username"
                    label=text(move || t_string!(i18n, field_username).to_string())
                    hint=text(move || t_string!(i18n, field_username_hint).to_string())
                    autocomplete="username"
                    required=true
                    maxlength=validate::USERNAME_MAX
                    error=error
                />
                <Field
                    name="display_name"
                    label=text(move || t_string!(i18n, field_display_name).to_string())
                    hint=text(move || t_string!(i18n, field_display_name_hint).to_string())
                    autocomplete="name"
                    required=true
                    maxlength=validate::DISPLAY_NAME_MAX
                    error=error
                />
                <Field
                    name="email"
                    input_type="email"
                    label=text(move || t_string!(i18n, field_email).to_string())
                    hint=text(move || t_string!(i18n, field_email_hint).to_string())
                    autocomplete="email"
                    maxlength=validate::EMAIL_MAX
                    error=error
                />
                <Field
                    name="password"
                    input_type="password"
                    label=text(move || t_string!(i18n, field_password).to_string())
                    hint=text(move || t_string!(i18n, field_password_hint).to_string())
                    autocomplete="new-password"
                    required=true
                    maxlength=validate::PASSWORD_MAX
                    error=error
                />
                <FormError error=error />
                <button type="submit" class="button" disabled=move || action.pending().get()>
                    {move || if action.pending().get() {
                        t_string!(i18n, submitting).to_string()
                    } else {
                        t_string!(i18n, submit_sign_up).to_string()
                    }}
                </button>
            </ActionForm>
            <p class="switch-auth">
                {t!(i18n, have_account)} " "
                <A href=move || format!("/signin?next={}", validate::encode_query_value(&next.get()))>
                    {t!(i18n, nav_sign_in)}
                </A>
            </p>
        </section>
    }
}

#[component]
pub fn GuestPage() -> impl IntoView {
    let i18n = use_i18n();
    let auth = use_auth();
    let action = auth.guest;
    let viewer = auth.viewer;
    let next = use_next();
    let error = error_of(action.value());
    let current_guest = Signal::derive(move || match viewer.get() {
        Some(Ok(Some(Viewer::Guest(guest)))) => Some(guest.display_name),
        _ => None,
    });
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, guest_title).to_string()) />
        <section class="narrow auth-card">
            <h1>{t!(i18n, guest_title)}</h1>
            <p class="muted">{t!(i18n, guest_lead)}</p>
            <Transition fallback=|| ()>
                {move || current_guest.get().map(|name| view! {
                    <p data-testid="guest-current">{t!(i18n, guest_current)} " " <strong>{name}</strong></p>
                })}
            </Transition>
            <ActionForm action=action attr:novalidate=true attr:data-testid="guest-form">
                <input type="hidden" name="next" value=move || next.get() />
                <Field
                    name="display_name"
                    label=text(move || t_string!(i18n, field_display_name).to_string())
                    hint=text(move || t_string!(i18n, field_display_name_hint).to_string())
                    autocomplete="name"
                    required=true
                    maxlength=validate::DISPLAY_NAME_MAX
                    error=error
                />
                <FormError error=error />
                <button type="submit" class="button" disabled=move || action.pending().get()>
                    {t!(i18n, guest_continue)}
                </button>
            </ActionForm>
        </section>
    }
}

#[component]
pub fn ProfilePage() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, profile_title).to_string()) />
        <RequireUser content=move |user| view! { <ProfileForms user /> } />
    }
}

#[component]
fn ProfileForms(user: crate::auth::UserSummary) -> impl IntoView {
    let i18n = use_i18n();
    let auth = use_auth();
    let update = auth.update_profile;
    let change = auth.change_password;
    let update_error = error_of(update.value());
    let change_error = error_of(change.value());
    let update_ok = move || matches!(update.value().get(), Some(Ok(())));
    let change_ok = move || matches!(change.value().get(), Some(Ok(())));
    let display_name = user.display_name.clone();
    view! {
        <section class="narrow">
            <h1>{t!(i18n, profile_title)}</h1>
            <p class="muted">
                {t!(i18n, profile_signed_in_as)} " " <strong data-testid="profile-username">{user.username.clone()}</strong>
            </p>
            <div class="card">
                <h2>{t!(i18n, profile_name_section)}</h2>
                <ActionForm action=update attr:novalidate=true attr:data-testid="profile-form">
                    <Field
                        name="display_name"
                        label=text(move || t_string!(i18n, field_display_name).to_string())
                        autocomplete="name"
                        required=true
                        maxlength=validate::DISPLAY_NAME_MAX
                        value=Signal::stored(display_name)
                        error=update_error
                    />
                    <FormError error=update_error />
                    <p class="form-ok" role="status">{move || update_ok().then(|| t_string!(i18n, saved).to_string())}</p>
                    <button type="submit" class="button">{t!(i18n, save)}</button>
                </ActionForm>
            </div>
            <EmailSection />
            <div class="card">
                <h2>{t!(i18n, profile_password_section)}</h2>
                <p class="muted">{t!(i18n, profile_password_note)}</p>
                <ActionForm action=change attr:novalidate=true attr:data-testid="password-form">
                    <Field
                        name="current_password"
                        input_type="password"
                        label=text(move || t_string!(i18n, field_current_password).to_string())
                        autocomplete="current-password"
                        required=true
                        error=change_error
                    />
                    <Field
                        name="new_password"
                        input_type="password"
                        label=text(move || t_string!(i18n, field_new_password).to_string())
                        hint=text(move || t_string!(i18n, field_password_hint).to_string())
                        autocomplete="new-password"
                        required=true
                        maxlength=validate::PASSWORD_MAX
                        error=change_error
                    />
                    <FormError error=change_error />
                    <p class="form-ok" role="status">{move || change_ok().then(|| t_string!(i18n, password_changed).to_string())}</p>
                    <button type="submit" class="button">{t!(i18n, change_password)}</button>
                </ActionForm>
            </div>
            <ApiTokensSection />
            <WebhooksSection />
        </section>
    }
}

/// The account's API tokens: make one (its secret shown once), see when
/// each was last used, revoke.
#[component]
fn ApiTokensSection() -> impl IntoView {
    let i18n = use_i18n();
    let create = ServerAction::<CreateApiToken>::new();
    let revoke = ServerAction::<RevokeApiToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| crate::auth::list_api_tokens(),
    );
    let create_error = error_of(create.value());
    let revoke_error = error_of(revoke.value());
    let revoked = move || matches!(revoke.value().get(), Some(Ok(())));
    let created = move || create.value().get().and_then(Result::ok);
    let scope_problem = move || create_error.get().and_then(|e| e.field_problem("scope"));
    let row = move |token: ApiTokenInfo| {
        let scope = if token.scope == "manage" {
            t_string!(i18n, profile_api_scope_label_manage).to_string()
        } else {
            t_string!(i18n, profile_api_scope_label_read).to_string()
        };
        let name = token.name.clone();
        let revoke_label =
            move || t_string!(i18n, profile_api_revoke_named, name = name.clone()).to_string();
        view! {
            <li class="token" data-testid="api-token">
                <strong class="token-name">{token.name.clone()}</strong>
                " · " <span>{scope}</span>
                <span class="muted">
                    " · " {t!(i18n, profile_api_created)} " " <LocalTime ms=token.created_at_ms />
                    " · " {t!(i18n, profile_api_last_used)} " "
                    {match token.last_used_at_ms {
                        Some(ms) => Either::Left(view! { <LocalTime ms /> }),
                        None => Either::Right(t!(i18n, profile_api_never_used)),
                    }}
                </span>
                <ActionForm action=revoke attr:class="inline-form">
                    <input type="hidden" name="id" value=token.id.clone() />
                    <button type="submit" class="button secondary button-small" aria-label=revoke_label>
                        {t!(i18n, profile_api_revoke)}
                    </button>
                </ActionForm>
            </li>
        }
    };
    // The access chosen, when a refused plain post comes back.
    let manage_sent = crate::form_echo::echo_for(create_error)
        .is_some_and(|echo| echo.value("scope") == Some("manage"));
    view! {
        <div class="card" data-testid="api-tokens">
            <h2>{t!(i18n, profile_api_section)}</h2>
            <p class="muted">{t!(i18n, profile_api_note)}</p>
            <ActionForm action=create attr:novalidate=true attr:data-testid="api-token-form">
                <Field
                    name="name"
                    label=text(move || t_string!(i18n, profile_api_name).to_string())
                    hint=text(move || t_string!(i18n, profile_api_name_hint).to_string())
                    required=true
                    maxlength=validate::DISPLAY_NAME_MAX
                    error=create_error
                />
                <div class="field" class:field-invalid=move || scope_problem().is_some()>
                    <label for="field-scope">{t!(i18n, profile_api_scope)}</label>
                    <select id="field-scope" name="scope">
                        <option value="read" selected=!manage_sent>{t!(i18n, profile_api_scope_read)}</option>
                        <option value="manage" selected=manage_sent>{t!(i18n, profile_api_scope_manage)}</option>
                    </select>
                </div>
                <FormError error=create_error />
                <button type="submit" class="button" disabled=move || create.pending().get()>
                    {t!(i18n, profile_api_create)}
                </button>
            </ActionForm>
            {move || created().map(|new| view! {
                <div class="field new-token" role="status">
                    <label for="new-api-token">{t!(i18n, profile_api_new)}</label>
                    <input id="new-api-token" type="text" readonly=true value=new.token data-testid="new-api-token" />
                </div>
            })}
            <FormError error=revoke_error />
            <p class="form-ok" role="status">{move || revoked().then(|| t_string!(i18n, profile_api_revoked).to_string())}</p>
            <Transition fallback=|| ()>
                {move || tokens.get().map(|result| match result {
                    Ok(list) if list.is_empty() => Either::Left(Either::Left(view! {
                        <p class="muted" data-testid="api-tokens-empty">{t!(i18n, profile_api_none)}</p>
                    })),
                    Ok(list) => Either::Left(Either::Right(view! {
                        <ul class="tokens">{list.into_iter().map(row).collect_view()}</ul>
                    })),
                    Err(err) => Either::Right(view! { <FormError error=Signal::stored(Some(err)) /> }),
                })}
            </Transition>
        </div>
    }
}

/// The account's webhook endpoints (secret shown once), with the latest
/// deliveries and how they went.
#[component]
fn WebhooksSection() -> impl IntoView {
    let i18n = use_i18n();
    let create = ServerAction::<CreateWebhook>::new();
    let remove = ServerAction::<RemoveWebhook>::new();
    let hooks = Resource::new(
        move || (create.version().get(), remove.version().get()),
        |_| crate::auth::list_webhooks(),
    );
    let create_error = error_of(create.value());
    let remove_error = error_of(remove.value());
    let removed = move || matches!(remove.value().get(), Some(Ok(())));
    let created = move || create.value().get().and_then(Result::ok);
    let hook_row = move |hook: WebhookInfo| {
        let url = hook.url.clone();
        let remove_label =
            move || t_string!(i18n, profile_hooks_remove_named, url = url.clone()).to_string();
        view! {
            <li class="token" data-testid="webhook">
                <code class="token-name">{hook.url.clone()}</code>
                <span class="muted">" · " <LocalTime ms=hook.created_at_ms /></span>
                <ActionForm action=remove attr:class="inline-form">
                    <input type="hidden" name="id" value=hook.id.clone() />
                    <button type="submit" class="button secondary button-small" aria-label=remove_label>
                        {t!(i18n, profile_hooks_remove)}
                    </button>
                </ActionForm>
            </li>
        }
    };
    let delivery_row = move |d: WebhookDelivery| {
        let state = match d.state.as_str() {
            "delivered" => t_string!(i18n, profile_hooks_delivered).to_string(),
            "failed" => t_string!(i18n, profile_hooks_failed).to_string(),
            _ => t_string!(i18n, profile_hooks_pending).to_string(),
        };
        let detail = match (d.last_status, d.last_error) {
            (Some(status), _) => format!(" ({status})"),
            (None, Some(error)) => format!(" ({error})"),
            (None, None) => String::new(),
        };
        view! {
            <tr data-testid="webhook-delivery" data-state=d.state.clone()>
                <td><code>{d.event}</code></td>
                <td><LocalTime ms=d.created_at_ms /></td>
                <td>{state}{detail}</td>
                <td>{d.attempts}</td>
            </tr>
        }
    };
    view! {
        <div class="card" data-testid="webhooks">
            <h2>{t!(i18n, profile_hooks_section)}</h2>
            <p class="muted">{t!(i18n, profile_hooks_note)}</p>
            <ActionForm action=create attr:novalidate=true attr:data-testid="webhook-form">
                <Field
                    name="url"
                    input_type="url"
                    label=text(move || t_string!(i18n, profile_hooks_url).to_string())
                    hint=text(move || t_string!(i18n, profile_hooks_url_hint).to_string())
                    required=true
                    error=create_error
                />
                <FormError error=create_error />
                <button type="submit" class="button" disabled=move || create.pending().get()>
                    {t!(i18n, profile_hooks_add)}
                </button>
            </ActionForm>
            {move || created().map(|new| view! {
                <div class="field new-token" role="status">
                    <label for="new-webhook-secret">{t!(i18n, profile_hooks_secret)}</label>
                    <input id="new-webhook-secret" type="text" readonly=true value=new.secret data-testid="new-webhook-secret" />
                </div>
            })}
            <FormError error=remove_error />
            <p class="form-ok" role="status">{move || removed().then(|| t_string!(i18n, profile_hooks_removed).to_string())}</p>
            <Transition fallback=|| ()>
                {move || hooks.get().map(|result| match result {
                    Ok(list) => Either::Left(view! {
                        {if list.hooks.is_empty() {
                            Either::Left(view! { <p class="muted" data-testid="webhooks-empty">{t!(i18n, profile_hooks_none)}</p> })
                        } else {
                            Either::Right(view! { <ul class="tokens">{list.hooks.into_iter().map(hook_row).collect_view()}</ul> })
                        }}
                        <h3>{t!(i18n, profile_hooks_log)}</h3>
                        {if list.deliveries.is_empty() {
                            Either::Left(view! { <p class="muted">{t!(i18n, profile_hooks_log_none)}</p> })
                        } else {
                            Either::Right(view! {
                                <table class="deliveries">
                                    <thead><tr>
                                        <th scope="col">{t!(i18n, profile_hooks_event)}</th>
                                        <th scope="col">{t!(i18n, profile_hooks_when)}</th>
                                        <th scope="col">{t!(i18n, profile_hooks_state)}</th>
                                        <th scope="col">{t!(i18n, profile_hooks_attempts)}</th>
                                    </tr></thead>
                                    <tbody>{list.deliveries.into_iter().map(delivery_row).collect_view()}</tbody>
                                </table>
                            })
                        }}
                    }),
                    Err(err) => Either::Right(view! { <FormError error=Signal::stored(Some(err)) /> }),
                })}
            </Transition>
        </div>
    }
}

/// The account's address and whether it is confirmed, with a button that
/// mails a new link.
#[component]
fn EmailSection() -> impl IntoView {
    let i18n = use_i18n();
    let resend = ServerAction::<ResendVerification>::new();
    let status = Resource::new(
        move || resend.version().get(),
        |_| crate::auth::email_status(),
    );
    let resend_error = error_of(resend.value());
    let resend_ok = move || matches!(resend.value().get(), Some(Ok(())));
    let describe = move |status: AccountEmail| match status {
        AccountEmail { email: None, .. } => Either::Left(view! {
            <p data-testid="email-status">{t!(i18n, profile_email_none)}</p>
        }),
        AccountEmail {
            email: Some(email),
            verified,
            mail_configured,
        } => Either::Right(view! {
            <dl class="facts">
                <dt>{t!(i18n, profile_email_address)}</dt>
                <dd>{email}</dd>
                <dt>{t!(i18n, profile_email_status)}</dt>
                <dd data-testid="email-status">
                    {move || if verified {
                        t_string!(i18n, profile_email_verified).to_string()
                    } else if mail_configured {
                        t_string!(i18n, profile_email_unverified).to_string()
                    } else {
                        t_string!(i18n, profile_email_no_mail).to_string()
                    }}
                </dd>
            </dl>
            {(!verified && mail_configured).then(|| view! {
                <ActionForm action=resend attr:data-testid="resend-form">
                    <FormError error=resend_error />
                    <p class="form-ok" role="status">
                        {move || resend_ok().then(|| t_string!(i18n, profile_email_sent).to_string())}
                    </p>
                    <button type="submit" class="button secondary" disabled=move || resend.pending().get()>
                        {t!(i18n, profile_email_resend)}
                    </button>
                </ActionForm>
            })}
        }),
    };
    view! {
        <div class="card">
            <h2>{t!(i18n, profile_email_section)}</h2>
            <Transition fallback=|| ()>
                {move || status.get().map(|result| match result {
                    Ok(status) => Either::Left(describe(status)),
                    Err(err) => Either::Right(view! { <FormError error=Signal::stored(Some(err)) /> }),
                })}
            </Transition>
        </div>
    }
}

/// `/verify-email?token=…`, the link in a confirmation mail. Opening it is
/// enough (no sign-in needed: holding the link proves the mailbox).
#[component]
pub fn VerifyEmailPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let token = Signal::derive(move || query.read().get("token").unwrap_or_default());
    let outcome = Resource::new(move || token.get(), crate::auth::verify_email);
    view! {
        <Title text=move || t_string!(i18n, verify_title).to_string() />
        <section class="narrow auth-card">
            <h1>{t!(i18n, verify_title)}</h1>
            <Suspense fallback=move || view! { <p class="muted">{t!(i18n, loading)}</p> }>
                {move || outcome.get().map(|result| match result {
                    Ok(VerifyOutcome::Verified) => Either::Left(view! {
                        <p role="status" data-testid="verify-result" data-outcome="verified">
                            {t!(i18n, verify_done)}
                        </p>
                        <p><A href="/meetings">{t!(i18n, verify_to_meetings)}</A></p>
                    }),
                    Ok(VerifyOutcome::Invalid) => Either::Right(Either::Left(view! {
                        <p role="alert" data-testid="verify-result" data-outcome="invalid">
                            {t!(i18n, verify_invalid)}
                        </p>
                        <p><A href="/profile">{t!(i18n, verify_to_profile)}</A></p>
                    })),
                    Err(err) => Either::Right(Either::Right(view! {
                        <FormError error=Signal::stored(Some(err)) />
                    })),
                })}
            </Suspense>
        </section>
    }
}

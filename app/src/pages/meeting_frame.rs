//! What every page of one meeting shares: the code from the address, and
//! the frame that loads the meeting or shows the not-found page.

use super::not_found::NotFound;
use crate::components::form_error_text;
use crate::error::ApiError;
use crate::i18n::*;
use crate::meetings::Meeting;
use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

fn use_code() -> Signal<String> {
    let params = use_params_map();
    Signal::derive(move || params.read().get("code").unwrap_or_default())
}

/// Renders `content` for a live meeting, or the not-found page (the same
/// for a wrong, guessed or cancelled code).
#[component]
pub(super) fn WithMeeting<F, V>(content: F) -> impl IntoView
where
    F: Fn(Meeting) -> V + Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let i18n = use_i18n();
    let code = use_code();
    let meeting = Resource::new(move || code.get(), crate::meetings::get_meeting);
    view! {
        <Suspense fallback=move || view! { <p class="muted">{t!(i18n, loading)}</p> }>
            {move || {
                let content = content.clone();
                Suspend::new(async move {
                    match meeting.await {
                        Ok(m) => EitherOf3::A(content(m)),
                        Err(ApiError::NotFound) => EitherOf3::B(view! { <NotFound /> }),
                        Err(err) => EitherOf3::C(view! {
                            <p class="form-error" role="alert">{form_error_text(i18n, &err)}</p>
                        }),
                    }
                })
            }}
        </Suspense>
    }
}

use super::RequireUser;
use crate::i18n::*;
use leptos::prelude::*;
use leptos_meta::Title;

/// The meetings page; scheduling lands here in the meetings release. For now
/// it is the signed-in landing place.
#[component]
pub fn MeetingsPage() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <Title text=move || t_string!(i18n, meetings_title).to_string() />
        <RequireUser content=move |_user| view! {
            <section class="narrow">
                <h1 data-testid="meetings-title">{t!(i18n, meetings_title)}</h1>
                <p>{t!(i18n, meetings_coming)}</p>
            </section>
        } />
    }
}

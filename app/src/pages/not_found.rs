use crate::i18n::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    let i18n = use_i18n();
    view! {
        <Title text=crate::page_title(move || t_string!(i18n, not_found_title).to_string()) />
        <section class="narrow not-found">
            <p class="big-code" aria-hidden="true">"404"</p>
            <h1>{t!(i18n, not_found_title)}</h1>
            <p>{t!(i18n, not_found_body)}</p>
            <A href="/" attr:class="button">{t!(i18n, not_found_home)}</A>
        </section>
    }
}

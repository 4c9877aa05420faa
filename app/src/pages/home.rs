use crate::components::use_auth;
use crate::i18n::*;
use leptos::either::Either;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

#[component]
pub fn HomePage() -> impl IntoView {
    let i18n = use_i18n();
    let viewer = use_auth().viewer;
    let actions = move || {
        Suspend::new(async move {
            match viewer.await {
                Ok(Some(v)) if !v.is_guest() => Either::Left(view! {
                    <A href="/meetings" attr:class="button">{t!(i18n, home_cta_meetings)}</A>
                }),
                _ => Either::Right(view! {
                    <A href="/signup" attr:class="button">{t!(i18n, home_cta_sign_up)}</A>
                    <A href="/signin" attr:class="button button-secondary">{t!(i18n, home_cta_sign_in)}</A>
                }),
            }
        })
    };
    view! {
        <Title text="" />
        <section class="hero">
            <p class="eyebrow">{t!(i18n, tagline)}</p>
            <h1 data-testid="home-title">{t!(i18n, home_title)}</h1>
            <p class="lead">{t!(i18n, home_lead)}</p>
            <div class="cta">
                <Transition fallback=|| ()>{actions}</Transition>
            </div>
        </section>
        <section class="features" aria-label=move || t_string!(i18n, tagline).to_string()>
            <article class="card">
                <h2>{t!(i18n, home_feature_private_title)}</h2>
                <p>{t!(i18n, home_feature_private_body)}</p>
            </article>
            <article class="card">
                <h2>{t!(i18n, home_feature_call_title)}</h2>
                <p>{t!(i18n, home_feature_call_body)}</p>
            </article>
            <article class="card">
                <h2>{t!(i18n, home_feature_lobby_title)}</h2>
                <p>{t!(i18n, home_feature_lobby_body)}</p>
            </article>
        </section>
    }
}

//! moim's shared application: the page shell, routes, pages, server
//! functions and the types that travel between server and browser.
#![recursion_limit = "256"]

include!(concat!(env!("OUT_DIR"), "/i18n/mod.rs"));

pub mod auth;
pub mod call;
pub mod chat;
pub mod components;
pub mod error;
#[cfg(feature = "ssr")]
pub mod fanout;
pub mod ice;
pub mod linkify;
pub mod lobby;
#[cfg(feature = "ssr")]
pub mod mail;
pub mod media;
pub mod meetings;
pub mod pages;
pub mod protocol;
#[cfg(feature = "ssr")]
pub mod state;
#[cfg(feature = "ssr")]
pub mod throttle;
pub mod time;
pub mod validate;

use crate::components::Header;
use crate::i18n::*;
use crate::pages::{
    EditMeetingPage, GuestPage, HomePage, LobbyPage, MeetingPage, MeetingsPage, NewMeetingPage,
    NotFound, ProfilePage, RoomPage, SignInPage, SignUpPage, VerifyEmailPage,
};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/moim.css" />
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Meta name="description" content="moim: self-hosted video meetings" />
        <Title formatter=|text: String| {
            if text.is_empty() { "moim".to_string() } else { format!("{text} · moim") }
        } />
        <I18nContextProvider>
            <AppBody />
        </I18nContextProvider>
    }
}

#[component]
fn AppBody() -> impl IntoView {
    let i18n = use_i18n();
    components::provide_auth_context();
    // Marks the page as interactive once the wasm has taken over, so tests
    // (and curious people) can tell a hydrated page from server HTML.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Router>
            <a class="skip-link" href="#main">
                {t!(i18n, skip_to_content)}
            </a>
            <Header />
            <main id="main" tabindex="-1">
                <Routes fallback=|| view! { <NotFound /> }>
                    <Route path=path!("/") view=HomePage />
                    <Route path=path!("/signin") view=SignInPage />
                    <Route path=path!("/signup") view=SignUpPage />
                    <Route path=path!("/guest") view=GuestPage />
                    <Route path=path!("/profile") view=ProfilePage ssr=SsrMode::Async />
                    <Route path=path!("/verify-email") view=VerifyEmailPage ssr=SsrMode::Async />
                    <Route path=path!("/meetings") view=MeetingsPage ssr=SsrMode::Async />
                    <Route path=path!("/meetings/new") view=NewMeetingPage ssr=SsrMode::Async />
                    <Route path=path!("/m/:code") view=MeetingPage ssr=SsrMode::Async />
                    <Route path=path!("/m/:code/edit") view=EditMeetingPage ssr=SsrMode::Async />
                    <Route path=path!("/m/:code/join") view=LobbyPage ssr=SsrMode::Async />
                    <Route path=path!("/m/:code/room") view=RoomPage ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

//! moim's shared application: the page shell, routes, pages, server
//! functions and the types that travel between server and browser.
#![recursion_limit = "256"]

include!(concat!(env!("OUT_DIR"), "/i18n/mod.rs"));

pub mod auth;
#[cfg(feature = "ssr")]
pub mod calendar;
pub mod call;
pub mod chat;
pub mod components;
pub mod error;
pub mod form_echo;
pub mod ice;
pub mod linkify;
pub mod lobby;
#[cfg(feature = "ssr")]
pub mod mail;
pub mod media;
pub mod meetings;
pub mod pages;
pub mod selftest;
/// The wire protocol (its own crate, shared with the server and the wasm bundle).
pub use ::protocol;
#[cfg(feature = "ssr")]
pub mod state;
pub mod time;
pub mod validate;

use crate::components::Header;
use crate::i18n::*;
use crate::pages::{
    EditMeetingPage, GuestPage, HomePage, LobbyPage, MeetingPage, MeetingsPage, NewMeetingPage,
    NotFound, ProfilePage, RoomPage, SelfTestPage, SignInPage, SignUpPage, VerifyEmailPage,
};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

/// A page's `<Title>` text in the viewer's language.
///
/// On the server the text is taken once, here, while the page's reactive
/// owner is current. leptos_meta reads a title only after the page has
/// rendered, outside that owner, and reading the language signal there
/// panics ("no Arena is active", or "already disposed") or reads another
/// request's arena. In the browser the title follows a change of language.
pub fn page_title(
    text: impl Fn() -> String + Send + Sync + 'static,
) -> leptos::text_prop::TextProp {
    #[cfg(feature = "ssr")]
    {
        leptos::text_prop::TextProp::from(untrack(text))
    }
    #[cfg(not(feature = "ssr"))]
    {
        leptos::text_prop::TextProp::from(text)
    }
}

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        // No `lang` here: the language provider writes the viewer's own
        // (`lang="ko"` for Korean), and a second `lang` would be a duplicate.
        <html>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <AutoReload options=options.clone() />
                // The style sheet from the same versioned directory as the
                // code (`server::bundle`): one link, written by the server.
                <link rel="stylesheet" id="leptos" href=format!("/{}/moim.css", options.site_pkg_dir) />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The document title. leptos_meta writes the server's `<title>` into the
/// HTML as it is, unescaped, so a meeting titled `</title><script>…` would
/// break out of it: on the server the text is escaped here. In the browser
/// the same string goes to `document.title`, which is plain text already.
fn title_markup(text: &str) -> String {
    let title = if text.is_empty() {
        "moim".to_string()
    } else {
        format!("{text} · moim")
    };
    if cfg!(feature = "ssr") {
        escape_html_text(&title)
    } else {
        title
    }
}

/// `&`, `<`, `>` and quotes as entities: text that stays text in HTML.
pub fn escape_html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Meta name="description" content="moim: self-hosted video meetings" />
        <Title formatter=|text: String| title_markup(&text) />
        <I18nContextProvider>
            <AppBody />
        </I18nContextProvider>
    }
}

#[component]
fn AppBody() -> impl IntoView {
    let i18n = use_i18n();
    // Before any resource: its place in the page's serialized data must be
    // the same on the server and in the browser.
    form_echo::provide_form_echo();
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
                    <Route path=path!("/selftest") view=SelfTestPage />
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

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
    path, Lazy, LazyRoute, SsrMode,
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
                <ChunkPreloadLinks />
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
        <I18nContextProvider cookie_options=language_cookie_options()>
            <AppBody />
        </I18nContextProvider>
    }
}

/// A year, in the milliseconds leptos-use counts a cookie's age in.
const LANGUAGE_COOKIE_MAX_AGE_MS: i64 = 365 * 24 * 3600 * 1000;

/// The cookie the reader's choice of language is kept in: for the whole
/// site and a year, so a language chosen on any page (the lobby, at
/// `/m/{code}/join`) holds on every page; without a path the browser keeps
/// a cookie for the directory of the page that set it only. The server
/// only reads it: left to itself, it would set one from Accept-Language on
/// a first visit (for that page's directory too), pinning the browser's
/// language of that day.
fn language_cookie_options() -> leptos_i18n::context::CookieOptions<Locale> {
    leptos_i18n::context::CookieOptions::default()
        .path("/".to_string())
        .max_age(LANGUAGE_COOKIE_MAX_AGE_MS)
        .same_site(leptos_use::SameSite::Lax)
        .readonly(cfg!(feature = "ssr"))
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
                    <Route path=path!("/signin") view={Lazy::<SignInRoute>::new()} />
                    <Route path=path!("/signup") view={Lazy::<SignUpRoute>::new()} />
                    <Route path=path!("/guest") view={Lazy::<GuestRoute>::new()} />
                    <Route path=path!("/selftest") view={Lazy::<SelfTestRoute>::new()} />
                    <Route path=path!("/profile") view={Lazy::<ProfileRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/verify-email") view={Lazy::<VerifyEmailRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/meetings") view={Lazy::<MeetingsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/meetings/new") view={Lazy::<NewMeetingRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/m/:code") view={Lazy::<MeetingRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/m/:code/edit") view={Lazy::<EditMeetingRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/m/:code/join") view={Lazy::<LobbyRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/m/:code/room") view={Lazy::<RoomRoute>::new()} ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

// Only the home page and the "not found" page are in the main bundle. The
// other pages come in five groups, each split off into a chunk of its own
// (`cargo leptos build --split`) that the browser loads when a page of the
// group is first opened: a first visit downloads the shared code and one
// group's, not every page's. The call group (the lobby, the call, the
// self-test: camera, microphone, WebRTC) is the largest; opening the lobby
// brings the call's code before anyone clicks "Join now". Groups rather
// than a chunk per page: the splitter also gives every set of pages that
// shares a function a chunk of its own, so twelve split points made up to
// ninety chunks (requests) for one page; five keep it to about a dozen.
// The sign-in page is a group of its own, apart from the sign-up, guest
// and verification pages and the profile, because it is what a newcomer
// opens first (every page that needs an account sends them there): alone
// it made a first visit to it 369 KiB -> 344 KiB on the wire, at the cost
// of 7-10 KiB more (more, smaller shared chunks) on the meetings and call
// pages (`scripts/bench.sh pages`). On the server a lazy page renders as
// any other.

/// One group of lazily loaded pages, each page named once: the group's
/// enum of pages, its `#[lazy]` function (the split point, which the
/// splitter's manifest names the group's chunks by), and a route per page
/// that loads the group (`Lazy::<SignInRoute>`).
macro_rules! page_group {
    ($(#[$doc:meta])* $lazy_fn:ident($kind:ident) {
        $($variant:ident => $page:ident at $route:ident,)*
    }) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        enum $kind {
            $($variant,)*
        }

        #[lazy]
        fn $lazy_fn(page: $kind) -> AnyView {
            match page {
                $($kind::$variant => view! { <$page /> }.into_any(),)*
            }
        }

        $(
            struct $route;

            impl LazyRoute for $route {
                fn data() -> Self {
                    Self
                }

                async fn view(_this: Self) -> AnyView {
                    $lazy_fn($kind::$variant).await
                }
            }
        )*
    };
}

page_group! {
    /// The sign-in page alone: what a newcomer opens first (every page
    /// that needs an account sends them there), so it carries no other
    /// page's code.
    sign_in_page(SignInPageKind) {
        SignIn => SignInPage at SignInRoute,
    }
}

page_group! {
    /// The sign-up, guest and email-verification pages, kept apart from
    /// the profile's larger forms.
    sign_up_page(SignUpPageKind) {
        SignUp => SignUpPage at SignUpRoute,
        Guest => GuestPage at GuestRoute,
        VerifyEmail => VerifyEmailPage at VerifyEmailRoute,
    }
}

page_group! {
    /// The profile: name, password, email, API tokens and webhooks.
    profile_page(ProfilePageKind) {
        Profile => ProfilePage at ProfileRoute,
    }
}

page_group! {
    /// The meeting list, a meeting, and the forms that schedule and edit one.
    meetings_page(MeetingsPageKind) {
        List => MeetingsPage at MeetingsRoute,
        New => NewMeetingPage at NewMeetingRoute,
        One => MeetingPage at MeetingRoute,
        Edit => EditMeetingPage at EditMeetingRoute,
    }
}

page_group! {
    /// The lobby, the call and the connection self-test.
    call_page(CallPage) {
        Lobby => LobbyPage at LobbyRoute,
        Room => RoomPage at RoomRoute,
        SelfTest => SelfTestPage at SelfTestRoute,
    }
}

/// The group whose chunk holds the page at `path` (as the routes above
/// place them), or none for a page in the main bundle.
#[cfg_attr(not(any(feature = "hydrate", feature = "ssr")), allow(dead_code))]
fn page_group(path: &str) -> Option<PageGroup> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["signin"] => Some(PageGroup::SignIn),
        ["signup"] | ["guest"] | ["verify-email"] => Some(PageGroup::SignUp),
        ["profile"] => Some(PageGroup::Profile),
        ["meetings"] | ["meetings", "new"] | ["m", _] | ["m", _, "edit"] => {
            Some(PageGroup::Meetings)
        }
        ["selftest"] | ["m", _, "join"] | ["m", _, "room"] => Some(PageGroup::Call),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageGroup {
    SignIn,
    SignUp,
    Profile,
    Meetings,
    Call,
}

#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
impl PageGroup {
    /// The name of the group's lazy function, which the splitter's manifest
    /// (`__wasm_split_manifest.json`) lists the group's chunks under.
    fn lazy_fn(self) -> &'static str {
        match self {
            PageGroup::SignIn => "sign_in_page",
            PageGroup::SignUp => "sign_up_page",
            PageGroup::Profile => "profile_page",
            PageGroup::Meetings => "meetings_page",
            PageGroup::Call => "call_page",
        }
    }
}

/// The chunks of the split bundle that each page group needs, by the name
/// of the group's lazy function (`call_page`), as the server read them
/// from the build's manifest at start-up (`server::bundle`).
#[cfg(feature = "ssr")]
#[derive(Clone, Debug, Default)]
pub struct ChunkPreloads {
    /// Site-relative directory the bundle is served from (`pkg/<version>`).
    pub pkg_dir: String,
    pub by_group: std::sync::Arc<std::collections::HashMap<String, Vec<String>>>,
}

/// Preload hints for the chunks of the page being served, so the browser
/// fetches them beside the main bundle rather than after it has started
/// (one round trip less before the page is interactive). `as="fetch"` and
/// `crossorigin` match how the chunk loader fetches them, so the preloaded
/// copy is the one used.
#[component]
fn ChunkPreloadLinks() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        let path = use_context::<http::request::Parts>()
            .map(|parts| parts.uri.path().to_string())
            .unwrap_or_default();
        let preloads = use_context::<ChunkPreloads>().unwrap_or_default();
        let modules = page_group(&path)
            .and_then(|group| preloads.by_group.get(group.lazy_fn()))
            .cloned()
            .unwrap_or_default();
        let pkg_dir = preloads.pkg_dir;
        modules
            .into_iter()
            .map(|module| {
                view! {
                    <link
                        rel="preload"
                        href=format!("/{pkg_dir}/{module}.wasm")
                        r#as="fetch"
                        r#type="application/wasm"
                        crossorigin=""
                    />
                }
            })
            .collect_view()
    }
}

/// Loads the chunk of the page the browser opened, before hydrating it.
/// Once loaded, the route's lazy view is ready at once, so the page
/// hydrates in one synchronous pass (`hydrate_body`) like a page in the
/// main bundle. Hydrating asynchronously instead (`hydrate_lazy`, which
/// waits for the chunk in the middle of hydrating) failed on every split
/// page here with a hydration mismatch in `<main>`.
#[cfg(feature = "hydrate")]
pub async fn load_code_of_current_page() {
    let path = window().location().pathname().unwrap_or_default();
    match page_group(&path) {
        Some(PageGroup::SignIn) => __preload_sign_in_page().await,
        Some(PageGroup::SignUp) => __preload_sign_up_page().await,
        Some(PageGroup::Profile) => __preload_profile_page().await,
        Some(PageGroup::Meetings) => __preload_meetings_page().await,
        Some(PageGroup::Call) => __preload_call_page().await,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{page_group, PageGroup};

    #[test]
    fn every_split_page_is_found_in_its_group() {
        for (path, group) in [
            ("/", None),
            ("/no/such/page", None),
            ("/signin", Some(PageGroup::SignIn)),
            ("/signup", Some(PageGroup::SignUp)),
            ("/guest", Some(PageGroup::SignUp)),
            ("/profile", Some(PageGroup::Profile)),
            ("/verify-email", Some(PageGroup::SignUp)),
            ("/meetings", Some(PageGroup::Meetings)),
            ("/meetings/new", Some(PageGroup::Meetings)),
            ("/m/abc-defg-hij", Some(PageGroup::Meetings)),
            ("/m/abc-defg-hij/edit", Some(PageGroup::Meetings)),
            ("/m/abc-defg-hij/join", Some(PageGroup::Call)),
            ("/m/abc-defg-hij/room", Some(PageGroup::Call)),
            ("/m/abc-defg-hij/room/", Some(PageGroup::Call)),
            ("/selftest", Some(PageGroup::Call)),
            ("/m/abc-defg-hij/other", None),
        ] {
            assert_eq!(page_group(path), group, "{path}");
        }
    }
}

//! Pages for signed-in people only.

use crate::auth::Viewer;
use crate::components::use_auth;
use crate::validate::encode_query_value;
use leptos::either::Either;
use leptos::prelude::*;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_location;

/// Renders `content` for a signed-in user; anyone else is sent to sign in
/// and brought back here afterwards.
#[component]
pub fn RequireUser<F, V>(content: F) -> impl IntoView
where
    F: Fn(crate::auth::UserSummary) -> V + Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let viewer = use_auth().viewer;
    let location = use_location();
    let here = move || {
        let path = location.pathname.get();
        let search = location.search.get();
        if search.is_empty() {
            path
        } else {
            format!("{path}?{search}")
        }
    };
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let content = content.clone();
                Suspend::new(async move {
                    match viewer.await {
                        Ok(Some(Viewer::User(user))) => Either::Left(content(user)),
                        _ => {
                            let target = format!("/signin?next={}", encode_query_value(&here()));
                            Either::Right(view! { <Redirect path=target /> })
                        }
                    }
                })
            }}
        </Suspense>
    }
}

//! What someone typed into a form that went as a plain HTML post (sent
//! before the page was interactive, or with JavaScript off) and was
//! refused. The framework answers such a post with a redirect back to the
//! form carrying only the error; the server keeps what was sent in the
//! session for the one page that shows the refusal (`server::form_echo`),
//! so the form comes back filled in as it was sent, with the reasons
//! beside the fields. Passwords and secrets are never kept.

use crate::error::ApiError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The session key the refused form is kept under until the next page.
pub const SESSION_KEY: &str = "moim.form_echo";

/// Enough for every form's fields; anything longer was refused for its
/// length anyway and is not worth keeping in the session.
const MAX_FIELDS: usize = 32;
const MAX_VALUE_BYTES: usize = 4096;

/// A refused form's values, by field name, in the order they were sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormEcho {
    fields: Vec<(String, String)>,
}

impl FormEcho {
    /// Keeps the fields worth showing again: never a password or secret,
    /// never more than a form's worth.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let fields = pairs
            .into_iter()
            .filter(|(name, value)| !is_secret(name) && value.len() <= MAX_VALUE_BYTES)
            .take(MAX_FIELDS)
            .collect();
        Self { fields }
    }

    /// The value sent for `name` (the first one, as a form has one).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether a checkbox named `name` was ticked (a form sends ticked
    /// boxes only).
    pub fn is_checked(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|word| name.contains(word))
}

/// This page's refused form, the same on the server and in the browser
/// (the server's copy travels in the page for hydration).
#[derive(Clone, Debug, Default)]
struct PageFormEcho(Option<FormEcho>);

/// Provides the refused form the server found for this page, if any.
/// Called once at the root, before any resource, so that its place in the
/// page's serialized data is the same on both sides.
pub fn provide_form_echo() {
    let echo = SharedValue::new(found_for_this_request).into_inner();
    provide_context(PageFormEcho(echo));
}

#[cfg(feature = "ssr")]
fn found_for_this_request() -> Option<FormEcho> {
    use_context::<http::request::Parts>()?
        .extensions
        .get::<FormEcho>()
        .cloned()
}

#[cfg(not(feature = "ssr"))]
fn found_for_this_request() -> Option<FormEcho> {
    None
}

/// What the form whose latest run ended in `error` had sent, when that
/// error is the refusal of a plain post this page shows. Read once, when
/// the form is built: later runs are the page's own and keep their fields.
pub fn echo_for(error: Signal<Option<ApiError>>) -> Option<FormEcho> {
    error.get_untracked()?;
    use_context::<PageFormEcho>()?.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn passwords_and_secrets_are_never_kept() {
        let echo = FormEcho::from_pairs(pairs(&[
            ("username", "ann"),
            ("password", "hunter22 hunter22"),
            ("current_password", "x"),
            ("new_password", "y"),
            ("webhook_secret", "z"),
            ("api_token", "moim_abc"),
            ("display_name", "Ann"),
        ]));
        assert_eq!(echo.value("username"), Some("ann"));
        assert_eq!(echo.value("display_name"), Some("Ann"));
        for secret in [
            "password",
            "current_password",
            "new_password",
            "webhook_secret",
            "api_token",
        ] {
            assert_eq!(echo.value(secret), None, "{secret} was kept");
        }
    }

    #[test]
    fn only_a_form_worth_is_kept() {
        let many: Vec<(String, String)> = (0..100)
            .map(|i| (format!("f{i}"), "v".to_string()))
            .collect();
        let echo = FormEcho::from_pairs(many);
        assert_eq!(echo.fields.len(), MAX_FIELDS);
        let huge = FormEcho::from_pairs(pairs(&[("title", &"x".repeat(MAX_VALUE_BYTES + 1))]));
        assert!(huge.is_empty());
    }

    #[test]
    fn checkboxes_are_ticked_when_sent() {
        let echo = FormEcho::from_pairs(pairs(&[("waiting_room", "on"), ("title", "")]));
        assert!(echo.is_checked("waiting_room"));
        assert!(!echo.is_checked("allow_guests"));
        assert_eq!(echo.value("title"), Some(""));
    }
}

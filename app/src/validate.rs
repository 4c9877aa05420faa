//! Input rules for accounts. Pure functions, shared by the server (which is
//! the authority) and the browser (for early hints).

use crate::error::{FieldError, FieldProblem};

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const DISPLAY_NAME_MAX: usize = 64;
pub const EMAIL_MAX: usize = 254;
/// NIST SP 800-63B asks for at least 8 characters and allows long passphrases.
pub const PASSWORD_MIN: usize = 8;
/// Bounded so argon2 is never handed megabytes.
pub const PASSWORD_MAX: usize = 256;

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Returns the username as typed (trimmed). Uniqueness is case-insensitive:
/// see [`username_key`].
pub fn username(field: &str, raw: &str) -> Result<String, FieldError> {
    let value = raw.trim();
    let problem = if value.is_empty() {
        Some(FieldProblem::Required)
    } else if char_len(value) < USERNAME_MIN {
        Some(FieldProblem::TooShort)
    } else if char_len(value) > USERNAME_MAX {
        Some(FieldProblem::TooLong)
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        || !value.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some(FieldProblem::InvalidChars)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(FieldError::new(field, problem)),
        None => Ok(value.to_string()),
    }
}

/// The form of a username that uniqueness is checked on.
pub fn username_key(username: &str) -> String {
    username.trim().to_ascii_lowercase()
}

/// A name shown to other people: any script, but no control characters, and
/// inner runs of whitespace collapsed so nobody can pad a name to look empty.
pub fn display_name(field: &str, raw: &str) -> Result<String, FieldError> {
    let value = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let problem = if value.is_empty() {
        Some(FieldProblem::Required)
    } else if char_len(&value) > DISPLAY_NAME_MAX {
        Some(FieldProblem::TooLong)
    } else if value
        .chars()
        .any(|c| c.is_control() || is_invisible_format_char(c))
    {
        Some(FieldProblem::ControlChars)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(FieldError::new(field, problem)),
        None => Ok(value),
    }
}

/// Bidirectional overrides and zero-width characters let a name pretend to be
/// someone else's; they have no place in a display name. (Direction marks
/// are refused here too: a name is a short run of one script and never needs
/// them, unlike a chat message.)
fn is_invisible_format_char(c: char) -> bool {
    is_hidden_control(c) || matches!(c, '\u{200C}'..='\u{200F}' | '\u{061C}')
}

pub use protocol::text::{chat_text, is_hidden_control, is_line_break};

/// An optional email: empty means none. Only a shape check; nothing is sent.
pub fn optional_email(field: &str, raw: &str) -> Result<Option<String>, FieldError> {
    let value = raw.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if char_len(value) > EMAIL_MAX {
        return Err(FieldError::new(field, FieldProblem::TooLong));
    }
    let valid_shape = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }
        None => false,
    };
    if !valid_shape || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new(field, FieldProblem::EmailInvalid));
    }
    Ok(Some(value.to_string()))
}

/// A webhook endpoint: an `https://` URL with a host and no credentials in
/// it, at most `domain::webhooks::URL_MAX` long. An address literal must be
/// public unless the operator allows private ones (which also allows
/// `http://`). Names are checked again when each delivery is sent.
#[cfg(feature = "ssr")]
pub fn webhook_url(field: &str, raw: &str, allow_private: bool) -> Result<String, FieldError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, FieldProblem::Required));
    }
    if char_len(value) > domain::webhooks::URL_MAX {
        return Err(FieldError::new(field, FieldProblem::TooLong));
    }
    let invalid = || FieldError::new(field, FieldProblem::UrlInvalid);
    let url = url::Url::parse(value).map_err(|_| invalid())?;
    let scheme_ok = url.scheme() == "https" || (allow_private && url.scheme() == "http");
    if !scheme_ok || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid());
    }
    let ip = match url.host() {
        None => return Err(invalid()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                return Err(FieldError::new(field, FieldProblem::UrlPrivate));
            }
            None
        }
        Some(url::Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
    };
    if ip.is_some_and(|ip| !allow_private && !domain::webhooks::is_public(ip)) {
        return Err(FieldError::new(field, FieldProblem::UrlPrivate));
    }
    Ok(url.to_string())
}

pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Passwords are taken exactly as typed (no trimming).
pub fn new_password(field: &str, raw: &str) -> Result<(), FieldError> {
    let len = char_len(raw);
    let problem = if raw.is_empty() {
        Some(FieldProblem::Required)
    } else if len < PASSWORD_MIN {
        Some(FieldProblem::TooShort)
    } else if len > PASSWORD_MAX {
        Some(FieldProblem::TooLong)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(FieldError::new(field, problem)),
        None => Ok(()),
    }
}

/// Where to send someone after signing in: only a path on this site, so a
/// crafted link cannot bounce a user to another origin.
pub fn safe_next(raw: &str) -> String {
    let ok = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.starts_with("/\\")
        && !raw.chars().any(|c| c.is_control());
    if ok {
        raw.to_string()
    } else {
        "/".to_string()
    }
}

/// Percent-encodes a string for use as one query-string value.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username("u", "  Alice_1 ").unwrap(), "Alice_1");
        assert_eq!(
            username("u", "").unwrap_err().problem,
            FieldProblem::Required
        );
        assert_eq!(
            username("u", "ab").unwrap_err().problem,
            FieldProblem::TooShort
        );
        assert_eq!(
            username("u", &"a".repeat(33)).unwrap_err().problem,
            FieldProblem::TooLong
        );
        assert_eq!(
            username("u", "al ice").unwrap_err().problem,
            FieldProblem::InvalidChars
        );
        assert_eq!(
            username("u", ".alice").unwrap_err().problem,
            FieldProblem::InvalidChars
        );
        assert_eq!(
            username("u", "앨리스abc").unwrap_err().problem,
            FieldProblem::InvalidChars
        );
        assert_eq!(username_key("AlIcE"), "alice");
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("d", "  김   민수 ").unwrap(), "김 민수");
        assert_eq!(
            display_name("d", "   ").unwrap_err().problem,
            FieldProblem::Required
        );
        assert_eq!(
            display_name("d", "evil\u{202E}txt").unwrap_err().problem,
            FieldProblem::ControlChars
        );
        assert_eq!(
            display_name("d", &"x".repeat(65)).unwrap_err().problem,
            FieldProblem::TooLong
        );
        assert!(display_name("d", &"가".repeat(64)).is_ok());
        for hidden in ["\u{2067}", "\u{2060}", "\u{061C}", "\u{200E}", "\u{FEFF}"] {
            assert_eq!(
                display_name("d", &format!("an{hidden}n"))
                    .unwrap_err()
                    .problem,
                FieldProblem::ControlChars,
                "{hidden:?}"
            );
        }
    }

    #[test]
    fn chat_text_loses_hidden_controls_and_keeps_one_kind_of_line_break() {
        // Trojan-Source style: the override makes "txt.exe" read "exe.txt".
        assert_eq!(chat_text("open \u{202E}txt.exe"), "open txt.exe");
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(chat_text(&format!("a{c}b")), "ab", "{c:?}");
        }
        assert_eq!(chat_text("zero\u{200B}width\u{FEFF}"), "zerowidth");
        assert_eq!(chat_text("nul\0bell\u{7}"), "nulbell");
        assert_eq!(
            chat_text("a\r\nb\rc\u{2028}d\u{2029}e\u{85}f\u{0B}g\u{0C}h\ni"),
            "a\nb\nc\nd\ne\nf\ng\nh\ni"
        );
        // Kept: tabs, joiners (emoji, Persian), direction marks, any script.
        let kept = "a\tb 👨\u{200D}👩 می\u{200C}خواهم \u{200F}שלום\u{200E} 123 \u{061C}";
        assert_eq!(chat_text(kept), kept);
    }

    #[test]
    fn emails() {
        assert_eq!(optional_email("e", " ").unwrap(), None);
        assert_eq!(
            optional_email("e", "a@example.org").unwrap().as_deref(),
            Some("a@example.org")
        );
        for bad in ["a", "a@b", "@b.c", "a@.b", "a b@c.d", "a@b.c."] {
            assert_eq!(
                optional_email("e", bad).unwrap_err().problem,
                FieldProblem::EmailInvalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords() {
        assert!(new_password("p", "12345678").is_ok());
        assert_eq!(
            new_password("p", "1234567").unwrap_err().problem,
            FieldProblem::TooShort
        );
        assert_eq!(
            new_password("p", "").unwrap_err().problem,
            FieldProblem::Required
        );
        assert_eq!(
            new_password("p", &"x".repeat(257)).unwrap_err().problem,
            FieldProblem::TooLong
        );
    }

    #[test]
    fn next_paths_stay_on_site() {
        assert_eq!(safe_next("/profile"), "/profile");
        assert_eq!(safe_next("/m/abc?x=1"), "/m/abc?x=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "",
            "profile",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query_value("/m/a b?x=1&y"), "/m/a%20b%3Fx%3D1%26y");
    }
}

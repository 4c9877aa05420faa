//! Times: stored and sent as UTC milliseconds, shown in the viewer's time
//! zone. The server renders UTC; once the page is interactive the browser
//! rewrites each time in local form (so server HTML and hydration agree).

use leptos::prelude::*;

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2030-01-15T01:00:00Z`
pub fn utc_iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `2030-01-15 01:00 UTC`, the server's rendering before the browser's.
pub fn utc_text(ms: i64) -> String {
    let iso = utc_iso(ms);
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// A time in the viewer's zone and language.
#[cfg(feature = "hydrate")]
pub fn local_text(ms: i64, locale: &str) -> String {
    use wasm_bindgen::JsValue;
    let date = js_sys::Date::new(&JsValue::from_f64(ms as f64));
    let options = js_sys::Object::new();
    for (key, value) in [
        ("weekday", "short"),
        ("year", "numeric"),
        ("month", "short"),
        ("day", "numeric"),
        ("hour", "2-digit"),
        ("minute", "2-digit"),
        ("timeZoneName", "short"),
    ] {
        let _ = js_sys::Reflect::set(&options, &key.into(), &value.into());
    }
    String::from(date.to_locale_string(locale, &options))
}

/// Hours and minutes of a time, in the viewer's zone in the browser (UTC
/// on the server, where the zone is unknown).
pub fn clock_text(ms: i64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        utc_iso(ms)[11..16].to_string()
    }
}

/// A `datetime-local` input value (`2030-01-15T10:00`, local time) to UTC
/// milliseconds, as the browser understands the viewer's zone.
#[cfg(feature = "hydrate")]
pub fn local_input_to_ms(value: &str) -> Option<i64> {
    if value.is_empty() {
        return None;
    }
    let ms = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(value)).get_time();
    ms.is_finite().then_some(ms as i64)
}

/// The browser's IANA time zone, remembered in a cookie so that pages the
/// server renders later can show local times too.
#[cfg(feature = "hydrate")]
pub fn browser_zone() -> Option<String> {
    let options = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new())
        .resolved_options();
    let zone = js_sys::Reflect::get(&options, &"timeZone".into())
        .ok()?
        .as_string()?;
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        let cookie = format!(
            "{ZONE_COOKIE}={};path=/;max-age=31536000;samesite=lax",
            String::from(js_sys::encode_uri_component(&zone))
        );
        let _ = js_sys::Reflect::set(&document, &"cookie".into(), &cookie.into());
    }
    Some(zone)
}

/// UTC milliseconds to a `datetime-local` value in the viewer's zone.
#[cfg(feature = "hydrate")]
pub fn ms_to_local_input(ms: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes()
    )
}

/// The cookie holding the viewer's IANA time zone, written by the browser
/// code, so that pages the server renders (and forms sent before the page is
/// interactive) can use local time.
pub const ZONE_COOKIE: &str = "moim_tz";

/// Local times on the server, for forms that arrive without the browser's
/// conversion (sent before the page was interactive, or with JavaScript off).
#[cfg(feature = "ssr")]
pub mod zone {
    use jiff::{civil::DateTime, tz::TimeZone, Timestamp};

    /// An IANA zone name the server knows (`Asia/Seoul`, `UTC`).
    pub fn known(name: &str) -> Option<TimeZone> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return None;
        }
        TimeZone::get(name).ok()
    }

    /// The viewer's zone from the request's cookie, if it names a known one.
    pub fn from_request() -> Option<String> {
        let parts = leptos::prelude::use_context::<http::request::Parts>()?;
        parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == super::ZONE_COOKIE)
            // Zone names hold letters, digits, `/`, `_`, `+` and `-`; the
            // browser's encodeURIComponent escapes only `/` and `+` of them.
            .map(|(_, value)| {
                value
                    .replace("%2F", "/")
                    .replace("%2f", "/")
                    .replace("%2B", "+")
                    .replace("%2b", "+")
            })
            .filter(|zone| known(zone).is_some())
    }

    /// UTC milliseconds to a `datetime-local` value (`2030-01-15T10:00`) in
    /// `zone`.
    pub fn local_input(ms: i64, zone: &str) -> Option<String> {
        let zone = known(zone)?;
        let time = Timestamp::from_millisecond(ms).ok()?.to_zoned(zone);
        Some(time.strftime("%Y-%m-%dT%H:%M").to_string())
    }

    /// A `datetime-local` value in `zone` to UTC milliseconds. A time that a
    /// daylight-saving change skips or repeats resolves the way browsers do
    /// (jiff's "compatible" rule: later for a gap, earlier for a fold).
    pub fn local_input_to_ms(value: &str, zone: &str) -> Option<i64> {
        let zone = known(zone)?;
        let value = value.trim();
        let civil: DateTime = value.parse().ok()?;
        let time = civil.to_zoned(zone).ok()?;
        Some(time.timestamp().as_millisecond())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn converts_both_ways_in_a_zone() {
            // 2030-01-15 10:00 in Seoul (UTC+9) is 01:00 UTC.
            let ms = 1_894_669_200_000;
            assert_eq!(
                local_input_to_ms("2030-01-15T10:00", "Asia/Seoul"),
                Some(ms)
            );
            assert_eq!(
                local_input(ms, "Asia/Seoul").as_deref(),
                Some("2030-01-15T10:00")
            );
            assert_eq!(local_input(ms, "UTC").as_deref(), Some("2030-01-15T01:00"));
            // New York in summer is UTC-4, in winter UTC-5.
            assert_eq!(
                local_input_to_ms("2030-07-01T09:00", "America/New_York"),
                local_input_to_ms("2030-07-01T13:00", "UTC")
            );
            assert_eq!(
                local_input_to_ms("2030-01-15T09:00", "America/New_York"),
                local_input_to_ms("2030-01-15T14:00", "UTC")
            );
        }

        #[test]
        fn refuses_unknown_zones_and_bad_values() {
            assert_eq!(local_input_to_ms("2030-01-15T10:00", "Mars/Olympus"), None);
            assert_eq!(local_input_to_ms("2030-01-15T10:00", ""), None);
            assert_eq!(local_input_to_ms("next tuesday", "UTC"), None);
            assert_eq!(local_input_to_ms("2030-02-30T10:00", "UTC"), None);
        }
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// `<time>` showing `ms` in the viewer's zone once the page is interactive.
#[component]
pub fn LocalTime(ms: i64) -> impl IntoView {
    let text = RwSignal::new(utc_text(ms));
    #[cfg(feature = "hydrate")]
    {
        use crate::i18n::*;
        let i18n = use_i18n();
        Effect::new(move |_| {
            let locale = match i18n.get_locale() {
                Locale::en => "en",
                Locale::ko => "ko",
            };
            text.set(local_text(ms, locale));
        });
    }
    view! { <time datetime=utc_iso(ms) data-ms=ms.to_string()>{move || text.get()}</time> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(utc_iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_iso(1_894_669_200_000), "2030-01-15T01:00:00Z");
        assert_eq!(utc_iso(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(1_894_669_200_000), "2030-01-15 01:00 UTC");
    }
}

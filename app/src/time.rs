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

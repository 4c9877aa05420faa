//! A meeting as an RFC 5545 calendar file: the `.ics` download and the
//! attachment of invitation mails build it here.
//!
//! The file is built with the `icalendar` crate (folding, CRLF, escaping of
//! the properties it knows as TEXT), but what people typed is cleaned first,
//! because the crate leaves three holes: a parameter value is written as it
//! is (a `"` in the host's name ends the quoted `CN` early, and a parser
//! then drops the ORGANIZER), `NAME` is not escaped at all (its `;`, `,` and
//! `\` reach the file raw), and a CR passes through everywhere.

use domain::meetings::{meeting_link, MeetingRow};

/// The RFC 5545 calendar file for a meeting.
pub fn ics(row: &MeetingRow, public_url: &str) -> String {
    use icalendar::{Calendar, Component, Event, EventLike, Property};
    let link = meeting_link(public_url, &row.code);
    let host = url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "moim".to_string());
    let to_utc =
        |ms: i64| chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).unwrap_or_default();
    let title = text_value(&row.title);
    let description = if row.description.is_empty() {
        format!("Join: {link}")
    } else {
        format!("{}\n\nJoin: {link}", text_value(&row.description))
    };
    // The host's own address stays private: anyone with the link can fetch
    // this file. The organizer is named, with a no-reply address.
    let organizer = format!("mailto:noreply@{host}");
    let mut organizer_prop = Property::new("ORGANIZER", organizer);
    organizer_prop.add_parameter("CN", &quoted_param_value(&row.host_name));
    let event = Event::new()
        .uid(&format!("{}@{host}", row.id))
        .summary(&title)
        .description(&description)
        .starts(to_utc(row.starts_at))
        .ends(to_utc(row.starts_at + row.duration_minutes * 60_000))
        .timestamp(to_utc(row.updated_at))
        .url(&link)
        .location(&link)
        .append_property(organizer_prop)
        .add_property("SEQUENCE", row.revision.to_string())
        .done();
    let mut calendar = Calendar::new();
    // Not `Calendar::name`: it writes NAME unescaped. X-WR-CALNAME is
    // escaped by the crate (it knows it as TEXT); NAME is escaped here.
    calendar
        .append_property(Property::new("NAME", escape_text(&title)))
        .append_property(Property::new("X-WR-CALNAME", &title))
        .push(event);
    calendar.append_property(Property::new("METHOD", "PUBLISH"));
    fold_octets(&calendar.done().to_string())
}

/// Content lines folded at 75 octets, as RFC 5545 (3.1) says. The crate
/// folds by characters, so a line of Korean or emoji came out at up to
/// four times that (found by the calendar fuzz target): unfold, then fold
/// again by bytes, never inside a character.
fn fold_octets(file: &str) -> String {
    const LIMIT: usize = 75;
    let unfolded = file.replace("\r\n ", "").replace("\r\n\t", "");
    let mut out = String::with_capacity(unfolded.len() + unfolded.len() / 40);
    for line in unfolded.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        let mut used = 0;
        // The first segment may fill the line; continuation lines start
        // with a space, which counts.
        let mut room = LIMIT;
        for c in line.chars() {
            if used + c.len_utf8() > room {
                out.push_str("\r\n ");
                used = 0;
                room = LIMIT - 1;
            }
            out.push(c);
            used += c.len_utf8();
        }
        out.push_str("\r\n");
    }
    out
}

/// A TEXT value's content: line breaks of every kind made `\n` (which the
/// escaping turns into the two characters `\n`), tabs made spaces, control
/// characters and bidirectional overrides dropped. No bare CR can remain.
fn text_value(raw: &str) -> String {
    crate::validate::chat_text(raw).replace('\t', " ")
}

/// RFC 5545 §3.3.11 TEXT escaping, for a property the crate does not
/// escape itself.
fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A parameter value as an RFC 5545 quoted-string: `"` cannot appear inside
/// one at all (it becomes `'`), nor can control characters (a line break
/// becomes a space). Always quoted, so `:`, `;` and `,` stay inside.
fn quoted_param_value(raw: &str) -> String {
    let one_line = text_value(raw).replace('\n', " ").replace('"', "'");
    format!("\"{one_line}\"")
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_fold_at_75_octets_between_characters() {
        let long = format!("SUMMARY:{}\r\n", "한".repeat(60));
        let folded = fold_octets(&long);
        assert!(
            folded.split("\r\n").all(|line| line.len() <= 75),
            "{folded}"
        );
        let unfolded = folded.replace("\r\n ", "");
        assert_eq!(unfolded, long);
    }

    use super::*;

    fn row(title: &str, description: &str, host_name: &str) -> MeetingRow {
        MeetingRow {
            id: "0123".into(),
            code: "abcdefghijklmnopqrstuvwxyz".into(),
            host_id: "h".into(),
            host_name: host_name.into(),
            title: title.into(),
            description: description.into(),
            starts_at: 1_800_000_000_000,
            duration_minutes: 30,
            waiting_room: 1,
            allow_guests: 0,
            max_participants: 6,
            revision: 2,
            cancelled_at: None,
            updated_at: 1_700_000_000_000,
            ended_at: None,
            media_mode: "automatic".into(),
        }
    }

    #[test]
    fn helpers_follow_rfc_5545() {
        assert_eq!(escape_text("a;b,c\\d\ne"), "a\\;b\\,c\\\\d\\ne");
        assert_eq!(
            quoted_param_value("Ann \"Boss\" Lee\r\nX:Y"),
            "\"Ann 'Boss' Lee X:Y\""
        );
        assert_eq!(text_value("a\rb\r\nc\td\u{7}"), "a\nb\nc d");
    }

    #[test]
    fn no_bare_cr_nor_control_characters_reach_the_file() {
        let file = ics(
            &row("T\ritle\u{7}", "one\rtwo\r\nthree\u{0}", "Ann\r\"x"),
            "https://meet.example.org",
        );
        let bytes = file.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR at {i}: {file:?}"),
                b'\n' => assert_eq!(bytes[i - 1], b'\r', "bare LF at {i}: {file:?}"),
                b if b.is_ascii_control() => panic!("control {b:#x} at {i}: {file:?}"),
                _ => {}
            }
        }
        assert!(
            file.contains("DESCRIPTION:one\\ntwo\\nthree\\n\\nJoin: "),
            "{file}"
        );
    }
}

//! What text from people may contain, the same on both sides: the server
//! stores chat as `chat_text` makes it, and the browser shows it so.

/// Invisible characters that change how text around them reads without
/// showing themselves: the bidirectional embeddings, overrides and isolates
/// (U+202A–U+202E, U+2066–U+2069: "Trojan Source", where `abc` U+202E `fdp.exe`
/// shows as `abcexe.pdf`), zero-width space, word joiner and invisible
/// operators, the deprecated format controls, Mongolian vowel separator and
/// the byte-order mark.
///
/// Kept elsewhere on purpose: U+200C/U+200D (ZWNJ/ZWJ), which Persian and
/// Indic scripts and emoji sequences need; and the direction *marks* U+200E,
/// U+200F and U+061C, which only settle the direction of neighbouring
/// punctuation and digits, cannot reorder a run of letters, and are what
/// people mixing Hebrew or Arabic with Latin text type to get it right.
pub fn is_hidden_control(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{180E}'
            | '\u{FEFF}'
    )
}

/// Whether a character ends a line for some reader: LF, CR, VT, FF, NEL,
/// LINE SEPARATOR and PARAGRAPH SEPARATOR.
pub fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Chat text as stored and shown: every kind of line break becomes `\n`
/// (CRLF counts once), tabs stay, and other control characters and the
/// hidden controls of [`is_hidden_control`] are dropped (NUL cannot even be
/// stored in PostgreSQL text).
pub fn chat_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if is_line_break(c) {
            out.push('\n');
        } else if c == '\t' || !(c.is_control() || is_hidden_control(c)) {
            out.push(c);
        }
    }
    out
}

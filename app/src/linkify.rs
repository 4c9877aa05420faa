//! Finds web links in chat text so they can be shown as links. The text
//! itself is always rendered as text; only `http(s)://` addresses become
//! anchors, and nothing is ever fetched for them.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Link(String),
}

/// Characters that end a link when they come last (sentence punctuation).
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', ')', ']', '\'', '"'];

pub fn segments(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find_link_start(rest) {
        let (before, from) = rest.split_at(start);
        let end = from
            .find(|c: char| c.is_whitespace() || c == '<' || c == '>')
            .unwrap_or(from.len());
        let mut link = &from[..end];
        while let Some(stripped) = link.strip_suffix(TRAILING) {
            link = stripped;
        }
        let scheme_len = if link.starts_with("https://") { 8 } else { 7 };
        if link.len() <= scheme_len {
            // "http://" alone is not a link.
            push_text(&mut out, before);
            push_text(&mut out, &from[..scheme_len]);
            rest = &from[scheme_len..];
            continue;
        }
        push_text(&mut out, before);
        out.push(Segment::Link(link.to_string()));
        rest = &from[link.len()..];
    }
    push_text(&mut out, rest);
    out
}

fn find_link_start(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    match (lower.find("https://"), lower.find("http://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn push_text(out: &mut Vec<Segment>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Segment::Text(last)) = out.last_mut() {
        last.push_str(text);
    } else {
        out.push(Segment::Text(text.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_and_punctuation_left_out() {
        assert_eq!(
            segments("see https://example.org/a?b=1, then"),
            vec![
                Segment::Text("see ".into()),
                Segment::Link("https://example.org/a?b=1".into()),
                Segment::Text(", then".into()),
            ]
        );
        assert_eq!(segments("plain"), vec![Segment::Text("plain".into())]);
        assert_eq!(
            segments("<b>http://x.y</b>"),
            vec![
                Segment::Text("<b>".into()),
                Segment::Link("http://x.y".into()),
                Segment::Text("</b>".into()),
            ]
        );
        assert_eq!(
            segments("javascript:alert(1) http://"),
            vec![Segment::Text("javascript:alert(1) http://".into())]
        );
    }
}

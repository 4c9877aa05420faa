//! Hardening (titles under load: `page_titles.rs`): headers a browser
//! enforces, cookies, calendar-file and chat-text injection, slow clients.

mod common;

use common::{spawn_app, spawn_with, Backend, Spawn};

/// The value of the one header named `name`.
fn header(response: &reqwest::Response, name: &str) -> String {
    let values: Vec<_> = response.headers().get_all(name).iter().collect();
    assert_eq!(values.len(), 1, "exactly one {name}");
    values[0].to_str().unwrap().to_string()
}

/// One CSP directive (`name` and its sources).
fn directive(csp: &str, name: &str) -> Option<String> {
    csp.split(';')
        .map(str::trim)
        .find(|d| d.split_whitespace().next() == Some(name))
        .map(str::to_string)
}

/// The `nonce="…"` of every `<script` in a page that has something to run
/// (an empty inline script, as leptos_i18n leaves, runs nothing and is not
/// checked by CSP), with the tag for messages.
fn script_nonces(html: &str) -> Vec<(String, Option<String>)> {
    html.match_indices("<script")
        .filter_map(|(i, _)| {
            let end = i + html[i..].find('>').unwrap();
            let tag = &html[i..=end];
            if !tag.contains(" src=") && html[end + 1..].starts_with("</script>") {
                return None;
            }
            let nonce = tag.find("nonce=\"").map(|n| {
                let rest = &tag[n + 7..];
                rest[..rest.find('"').unwrap()].to_string()
            });
            Some((tag.to_string(), nonce))
        })
        .collect()
}

/// Pages get a strict Content-Security-Policy whose nonce is the one on
/// every inline script of the page, fresh for every response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_strict_csp_with_their_own_script_nonce() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = app.client();
    let mut nonces = Vec::new();
    for path in ["/", "/signin", "/no/such/page"] {
        let response = client
            .get(app.url(path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        let csp = header(&response, "content-security-policy");
        let html = response.text().await.unwrap();
        assert_eq!(
            directive(&csp, "default-src").as_deref(),
            Some("default-src 'self'"),
            "{csp}"
        );
        let scripts = directive(&csp, "script-src").expect("script-src");
        assert!(
            !scripts.contains("unsafe-inline") && !scripts.contains("'unsafe-eval'"),
            "{csp}"
        );
        let nonce = scripts
            .split_whitespace()
            .find_map(|s| s.strip_prefix("'nonce-")?.strip_suffix('\''))
            .unwrap_or_else(|| panic!("no nonce in {csp}"))
            .to_string();
        assert!(nonce.len() >= 22, "a nonce of at least 128 bits: {nonce}");
        let on_page = script_nonces(&html);
        assert!(!on_page.is_empty(), "{path} has scripts");
        for (tag, found) in &on_page {
            assert_eq!(
                found.as_deref(),
                Some(nonce.as_str()),
                "{path}: {tag} carries the nonce"
            );
        }
        assert!(
            directive(&csp, "connect-src")
                .is_some_and(|d| d.contains(&format!("ws://{}", app.addr))),
            "{csp}"
        );
        for d in [
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(d), "{d} in {csp}");
        }
        nonces.push(nonce);
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "a fresh nonce per response");
    // Over plain http: no HSTS, the plain cookie name.
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert!(health.headers().get("strict-transport-security").is_none());
    assert!(health.headers().get("content-security-policy").is_some());
    let signed_up = app
        .call(
            &client,
            "sign_up",
            &[
                ("username", "plainhttp"),
                ("display_name", "Plain"),
                ("email", ""),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    let cookie = header(&signed_up, "set-cookie");
    assert!(cookie.starts_with("moim.sid="), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

/// Behind an https public URL: HSTS, and the session cookie is
/// `__Host-moim.sid` with `Secure`, `Path=/` and no `Domain`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_public_url_brings_hsts_and_a_host_prefixed_cookie() {
    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.public_url = Some("https://meet.example.org".into());
    let app = spawn_with(spawn).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(
        header(&page, "strict-transport-security"),
        "max-age=31536000"
    );
    let csp = header(&page, "content-security-policy");
    assert!(
        directive(&csp, "connect-src").is_some_and(|d| d.contains("wss://meet.example.org")),
        "{csp}"
    );
    let signed_up = client
        .post(app.url("/api/sign_up"))
        .header("origin", "https://meet.example.org")
        .form(&[
            ("username", "securecookie"),
            ("display_name", "Secure"),
            ("email", ""),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 200);
    let cookie = header(&signed_up, "set-cookie");
    assert!(cookie.starts_with("__Host-moim.sid="), "{cookie}");
    let attributes: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(attributes.iter().any(|a| a == "secure"), "{cookie}");
    assert!(attributes.iter().any(|a| a == "path=/"), "{cookie}");
    assert!(attributes.iter().any(|a| a == "httponly"), "{cookie}");
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "{cookie}"
    );
    // The prefixed cookie is the one the server reads back.
    let value = cookie.split(';').next().unwrap();
    let viewer = client
        .post(app.url("/api/current_viewer"))
        .header("origin", "https://meet.example.org")
        .header("cookie", value)
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), 200);
    let viewer: serde_json::Value = viewer.json().await.unwrap();
    assert!(viewer.to_string().contains("securecookie"), "{viewer}");
}

/// A host name with `"`, `;` and `,`, and a title with `;`, `,` and `\`:
/// the calendar file still parses with an independent parser, keeps the
/// ORGANIZER, and escapes NAME like every TEXT value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_file_survives_quotes_and_separators_in_names() {
    let app = spawn_app(Backend::Sqlite).await;
    let host = app.client();
    let signed_up = app
        .call(
            &host,
            "sign_up",
            &[
                ("username", "boss"),
                ("display_name", "Ann \"The Boss\" Lee; CEO, Inc."),
                ("email", ""),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(signed_up.status(), 200);
    let title = "Q3; budget, review \\ plan";
    let response = app
        .call(
            &host,
            "schedule_meeting",
            &[("title", title), ("instant", "1")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let code: String = response.json().await.unwrap();
    let text = reqwest::get(app.url(&format!("/m/{code}/invite.ics")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\r' {
            assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
    let unfolded = text.replace("\r\n ", "");
    let name_line = unfolded
        .lines()
        .find(|l| l.starts_with("NAME"))
        .expect("NAME");
    assert_eq!(name_line, "NAME:Q3\\; budget\\, review \\\\ plan");
    let calname = unfolded
        .lines()
        .find(|l| l.starts_with("X-WR-CALNAME"))
        .expect("X-WR-CALNAME");
    assert_eq!(&calname["X-WR-CALNAME".len()..], &name_line["NAME".len()..]);

    let mut calendars = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let calendar = calendars.next().expect("one calendar").expect("parses");
    let event = &calendar.events[0].properties;
    let organizer = event
        .iter()
        .find(|p| p.name == "ORGANIZER")
        .expect("the ORGANIZER survives");
    assert!(organizer
        .value
        .as_deref()
        .unwrap_or("")
        .starts_with("mailto:"));
    let params = organizer.params.clone().unwrap_or_default();
    let cn: Vec<&String> = params
        .iter()
        .filter(|(k, _)| k == "CN")
        .flat_map(|(_, v)| v)
        .collect();
    assert_eq!(cn.len(), 1, "{params:?}");
    assert!(
        cn[0].contains("Ann 'The Boss' Lee; CEO, Inc."),
        "{params:?}"
    );
    assert!(
        event
            .iter()
            .all(|p| p.name != "CEO" && !p.name.contains("Inc")),
        "no forged property"
    );
}

/// Chat text loses bidirectional overrides and isolates before it is
/// stored, and a message with line breaks stays one line of `chat.txt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_text_is_stored_without_overrides_and_downloaded_one_line_per_message() {
    use app::protocol::{ClientMessage, ServerMessage};
    use common::people::{enter, instant_meeting, join_call, person};

    let app = spawn_app(Backend::Sqlite).await;
    let ann = person(&app, "ann").await;
    let code = instant_meeting(&app, &ann, "", &[]).await;
    enter(&app, &ann, &code, "").await;
    let (mut ws, _, _) = join_call(&app, &ann, &code, None).await;
    let texts = [
        "invoice_\u{202E}fdp.exe and \u{2066}isolated\u{2069} \u{202A}embedded\u{202C}",
        "first line\n[00:00] Bob: forged\r\nthird\u{2028}fourth",
    ];
    for (i, text) in texts.iter().enumerate() {
        ws.send(&ClientMessage::ChatSend {
            key: format!("k-{i}"),
            text: (*text).into(),
            to: None,
        })
        .await;
        ws.recv_until(|m| matches!(m, ServerMessage::ChatAck { .. }))
            .await;
    }
    let stored: Vec<(String,)> = sqlx::query_as("SELECT body FROM chat_messages ORDER BY seq")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(stored[0].0, "invoice_fdp.exe and isolated embedded");
    assert_eq!(
        stored[1].0,
        "first line\n[00:00] Bob: forged\nthird\nfourth"
    );
    for (text,) in &stored {
        assert!(
            !text
                .chars()
                .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\r')),
            "{text:?}"
        );
    }

    ws.send(&ClientMessage::EndMeeting).await;
    ws.recv_until(|m| matches!(m, ServerMessage::MeetingEnded))
        .await;
    let txt = ann
        .client
        .get(app.url(&format!("/m/{code}/chat.txt")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = txt
        .split([
            '\n', '\r', '\u{2028}', '\u{2029}', '\u{85}', '\u{0B}', '\u{0C}',
        ])
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "the title and one line per message: {txt:?}"
    );
    assert!(
        lines[2].ends_with("ann: first line ↵ [00:00] Bob: forged ↵ third ↵ fourth"),
        "{txt}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("[00:00] Bob")), "{txt}");
}

/// A client that sends half a request line and then nothing is cut off
/// after the header timeout, while other clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_is_cut_off_while_others_are_served() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = vec!["--header-timeout-seconds".into(), "1".into()];
    let app = spawn_with(spawn).await;

    let started = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HT").await.unwrap();
    // And one that never sends a byte at all.
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();

    // Served meanwhile.
    let ok = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(ok.status(), 200);

    for stream in [&mut slow, &mut silent] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
            .await
            .expect("the server closes a stalled connection within the timeout");
        // Closed (an orderly end or a reset), and nothing was served.
        if let Ok(n) = read {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(!text.contains("200 OK"), "{text}");
        }
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "not before the timeout: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // A fresh client after that is served as usual.
    let ok = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(ok.status(), 200);
}

/// A request whose body trickles in (headers complete, body never) is
/// answered 408 after the request timeout instead of holding its task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_never_comes_is_answered_408() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = vec!["--request-timeout-seconds".into(), "1".into()];
    let app = spawn_with(spawn).await;

    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/sign_up HTTP/1.1\r\nHost: {addr}\r\nOrigin: {base}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=a",
        addr = app.addr,
        base = app.base,
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered within the timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundle_is_kept_for_a_year_under_its_version_and_pages_are_not() {
    // A site root with a bundle, as cargo-leptos writes it.
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir(site.path().join("pkg")).unwrap();
    std::fs::write(site.path().join("pkg/moim.js"), "console.log('moim');\n").unwrap();
    std::fs::write(site.path().join("pkg/moim.css"), "body { margin: 0 }\n").unwrap();
    // Compressed at build time (scripts/precompress.mjs), after the file.
    std::fs::write(site.path().join("pkg/moim.css.br"), "brotli bytes").unwrap();
    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = vec!["--site-root".into(), site.path().display().to_string()];
    let app = spawn_with(spawn).await;
    let client = app.client();

    // The page names the bundle by its version, script and style alike.
    let page = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(
        header(&page, "cache-control"),
        "private, no-cache",
        "pages are asked for again"
    );
    let html = page.text().await.unwrap();
    let at = html.find("/pkg/").expect("the page loads the bundle") + "/pkg/".len();
    let version = &html[at..at + 16];
    assert!(version.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");
    assert!(html.contains(&format!("/pkg/{version}/moim.js")), "script");
    assert!(
        html.contains(&format!("/pkg/{version}/moim.css")),
        "style sheet"
    );

    // Under its version: kept a year, never asked for again.
    let script = client
        .get(app.url(&format!("/pkg/{version}/moim.js")))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(
        header(&script, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let etag = header(&script, "etag");
    assert!(etag.starts_with("W/\"") && etag.contains(version), "{etag}");
    assert_eq!(script.text().await.unwrap(), "console.log('moim');\n");
    // A forced reload revalidates: unchanged, no body.
    let reload = client
        .get(app.url(&format!("/pkg/{version}/moim.js")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 304);
    assert_eq!(header(&reload, "etag"), etag);
    assert!(reload.text().await.unwrap().is_empty());
    // Another file's tag is not this one's.
    let css_tag = client
        .get(app.url(&format!("/pkg/{version}/moim.css")))
        .header("if-none-match", &etag)
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(css_tag.status(), 200);
    // The build's compressed copy to a browser that takes brotli, the file
    // itself to one that does not.
    let css = format!("/pkg/{version}/moim.css");
    let brotli = client
        .get(app.url(&css))
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&brotli, "content-encoding"), "br");
    assert_eq!(
        header(&brotli, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(brotli.text().await.unwrap(), "brotli bytes");
    let plain = client
        .get(app.url(&css))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.text().await.unwrap(), "body { margin: 0 }\n");
    // Another version (a page from another build): today's file, asked for
    // again every time rather than kept under a name it does not match.
    let other = client
        .get(app.url("/pkg/0000000000000000/moim.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "cache-control"), "no-cache");
    // Nothing outside the bundle's directory.
    let escape = client
        .get(app.url(&format!("/pkg/{version}/..%2F..%2Fetc%2Fpasswd")))
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 404);

    // Without a version: revalidated, with a Last-Modified that is honoured.
    let first = client.get(app.url("/pkg/moim.js")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "cache-control"), "no-cache");
    let modified = header(&first, "last-modified");
    let again = client
        .get(app.url("/pkg/moim.js"))
        .header("if-modified-since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // A new build is a new version.
    std::fs::write(site.path().join("pkg/moim.js"), "console.log('moim 2');\n").unwrap();
    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = vec!["--site-root".into(), site.path().display().to_string()];
    let rebuilt = spawn_with(spawn).await;
    let html = client
        .get(rebuilt.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains(&format!("/pkg/{version}/")),
        "the version follows the content"
    );
}

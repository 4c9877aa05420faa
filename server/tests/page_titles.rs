//! Every page renders, with its status and its title, while many are
//! rendered at once (leptos_meta reads titles after rendering, outside the
//! page's owner: that used to panic), and while other instances start in
//! the same process (listing routes switched resource loading off for the
//! whole process: pages rendered meanwhile stalled until the request
//! timeout, 408).

mod common;

use common::{spawn_app, spawn_with, Backend, Spawn, TestApp};
use reqwest::Client;

/// The text of the first `<title>` in a page.
fn title_of(html: &str) -> Option<&str> {
    let start = html.find("<title>")? + "<title>".len();
    let end = html[start..].find("</title>")?;
    Some(&html[start..start + end])
}

async fn host_with_meeting(app: &TestApp, title: &str) -> (Client, String) {
    let host = app.signed_up_client("pagehost", "").await;
    let response = app
        .call(
            &host,
            "schedule_meeting",
            &[("title", title), ("instant", "1")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let code: String = response.json().await.unwrap();
    let entered = app
        .call(
            &host,
            "enter_meeting",
            &[("code", &code), ("display_name", "")],
        )
        .await;
    assert_eq!(entered.status(), 200);
    (host, code)
}

/// Every page with a `<Title>`, many at once (server rendering runs on
/// several threads, where reading the language outside the page's reactive
/// owner used to panic), answers with its status and its title.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_renders_with_its_title_under_concurrency() {
    let app = spawn_app(Backend::Sqlite).await;
    let (host, code) = host_with_meeting(&app, "Standup").await;
    let stranger = app.client();
    let pages: Vec<(Client, String, u16, &str)> = vec![
        (stranger.clone(), "/".into(), 200, "moim"),
        (stranger.clone(), "/signin".into(), 200, "Sign in · moim"),
        (
            stranger.clone(),
            "/signup".into(),
            200,
            "Create your account · moim",
        ),
        (
            stranger.clone(),
            "/guest".into(),
            200,
            "Join as a guest · moim",
        ),
        (
            stranger.clone(),
            "/no/such/page".into(),
            404,
            "Page not found · moim",
        ),
        (host.clone(), "/profile".into(), 200, "Your profile · moim"),
        (host.clone(), "/meetings".into(), 200, "Meetings · moim"),
        (
            host.clone(),
            "/meetings/new".into(),
            200,
            "Schedule a meeting · moim",
        ),
        (host.clone(), format!("/m/{code}"), 200, "Standup · moim"),
        (
            host.clone(),
            format!("/m/{code}/edit"),
            200,
            "Edit meeting · moim",
        ),
        (
            host.clone(),
            format!("/m/{code}/join"),
            200,
            "Ready to join? · moim",
        ),
        // In the call, the tab names the meeting.
        (
            host.clone(),
            format!("/m/{code}/room"),
            200,
            "Standup · moim",
        ),
    ];
    for _round in 0..6 {
        let requests = pages.iter().map(|(client, path, status, title)| {
            let request = client.get(app.url(path)).header("accept", "text/html");
            async move {
                let response = request.send().await.expect("page answers");
                let got = response.status().as_u16();
                let body = response.text().await.expect("body");
                assert_eq!(got, *status, "{path}: {body}");
                assert_eq!(title_of(&body), Some(*title), "{path}");
            }
        });
        futures_util::future::join_all(requests).await;
    }
}

/// Pages rendered while other instances start in this process all answer.
/// Building an instance lists the app's routes by rendering it with
/// resource loading switched off process-wide; a page whose resources
/// started meanwhile waited forever (until the request timeout: 408).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_render_while_other_instances_start_in_the_same_process() {
    let mut spawn = Spawn::new(Backend::Sqlite);
    // A stalled page shows as 408 after this, not after the default 30 s.
    spawn.extra_args = vec!["--request-timeout-seconds".into(), "5".into()];
    let app = spawn_with(spawn).await;
    let (host, code) = host_with_meeting(&app, "Standup").await;
    let starting = tokio::spawn(async {
        let mut others = Vec::new();
        for _ in 0..8 {
            others.push(spawn_app(Backend::Sqlite).await);
        }
        others.len()
    });
    let mut answered = 0;
    while !starting.is_finished() || answered < 40 {
        let pages = [
            format!("/m/{code}"),
            // Not a meeting code: a wrong code would count against the
            // link-guessing limit, and this loop runs as long as it must.
            "/no/such/page".to_string(),
            "/meetings".into(),
        ];
        let requests = pages.iter().map(|path| {
            let request = host.get(app.url(path)).header("accept", "text/html");
            async move {
                let status = request.send().await.expect("page answers").status();
                assert_ne!(status, 408, "{path} stalled");
                assert!(status == 200 || status == 404, "{path}: {status}");
            }
        });
        futures_util::future::join_all(requests).await;
        answered += pages.len();
    }
    assert_eq!(starting.await.expect("instances start"), 8);
}

//! Email addresses are claims until proved: verification links, what an
//! unproven address does not grant, the sign-up answer that tells nobody
//! whose address it is, invitation mail, and who sees invitees' addresses.
//! Mail goes through a real SMTP server (aiosmtpd) started by the test.

mod common;

use common::smtp_server::{Mail, SmtpServer};
use common::{spawn_app, spawn_with, Backend, Spawn, TestApp};
use reqwest::Client;
use serde_json::Value;

on_both_databases!(
    an_unproven_address_grants_nothing_and_blocks_nobody,
    a_verified_address_gets_a_note_not_a_different_answer,
    invitation_mail_carries_the_link_and_a_calendar_file,
    invitee_addresses_are_shown_to_hosts_only,
    resending_is_throttled_and_without_mail_the_profile_says_so,
);

const PASSWORD: &str = "correct horse battery";

async fn app_with_mail(backend: Backend, smtp: &SmtpServer) -> TestApp {
    spawn_with(Spawn {
        extra_args: smtp.args(),
        ..Spawn::new(backend)
    })
    .await
}

/// Signs up on a fresh client; returns the client and the raw answer.
async fn sign_up(app: &TestApp, username: &str, email: &str) -> (Client, u16, String) {
    let client = app.client();
    let response = app
        .call(
            &client,
            "sign_up",
            &[
                ("username", username),
                ("display_name", username),
                ("email", email),
                ("password", PASSWORD),
            ],
        )
        .await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (client, status, body)
}

async fn schedule(app: &TestApp, host: &Client, invitees: &str) -> String {
    let starts = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000)
        .to_string();
    let response = app
        .call(
            host,
            "schedule_meeting",
            &[
                ("title", "Budget, Q3"),
                ("starts_at_ms", &starts),
                ("duration_minutes", "30"),
                ("invitees", invitees),
                ("waiting_room", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn instant(app: &TestApp, host: &Client, invitees: &str) -> String {
    let response = app
        .call(
            host,
            "schedule_meeting",
            &[
                ("title", "Stand-up"),
                ("instant", "1"),
                ("invitees", invitees),
                ("waiting_room", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn upcoming(app: &TestApp, client: &Client) -> Vec<Value> {
    let response = app.call(client, "list_meetings", &[]).await;
    assert_eq!(response.status(), 200);
    let lists: Value = response.json().await.unwrap();
    lists["upcoming"].as_array().unwrap().clone()
}

async fn meeting(app: &TestApp, client: &Client, code: &str) -> Value {
    let response = app.call(client, "get_meeting", &[("code", code)]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn enter(app: &TestApp, client: &Client, code: &str) -> Value {
    let response = app
        .call(
            client,
            "enter_meeting",
            &[("code", code), ("display_name", "")],
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn email_status(app: &TestApp, client: &Client) -> Value {
    let response = app.call(client, "email_status", &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A server-rendered page, as the browser first gets it.
async fn page(app: &TestApp, client: &Client, path: &str) -> String {
    let response = client
        .get(app.url(path))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

fn token_of(app: &TestApp, mail: &Mail) -> String {
    let link = mail
        .link(&format!("{}/verify-email?token=", app.base))
        .unwrap_or_else(|| panic!("no verification link in {:?}", mail.text));
    link.rsplit_once("token=").unwrap().1.to_string()
}

/// Opens a verification token through the server function.
async fn verify(app: &TestApp, token: &str) -> Value {
    let response = app
        .call(&app.client(), "verify_email", &[("token", token)])
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn an_unproven_address_grants_nothing_and_blocks_nobody(backend: Backend) {
    let smtp = SmtpServer::start();
    let app = app_with_mail(backend, &smtp).await;
    let (host, ..) = sign_up(&app, "chair", "").await;
    let code = instant(&app, &host, "owner@example.org").await;

    // Mallory claims the invitee's address first.
    let (mallory, status, _) = sign_up(&app, "mallory", "Owner@Example.org").await;
    assert_eq!(status, 200);
    let status = email_status(&app, &mallory).await;
    assert_eq!(status["verified"], false);
    assert_eq!(status["mail_configured"], true);
    // The claim grants nothing: no meeting in the list (nor its code), no
    // invitee role, and the waiting room like any stranger.
    assert_eq!(upcoming(&app, &mallory).await, Vec::<Value>::new());
    assert_eq!(meeting(&app, &mallory, &code).await["role"], "Visitor");
    assert_eq!(enter(&app, &mallory, &code).await, "Waiting");
    // The address gets the invitation and the link for Mallory's claim.
    let mails = smtp.wait_for("owner@example.org", 2).await;
    let links = |mails: &[Mail]| -> Vec<Mail> {
        mails
            .iter()
            .filter(|m| m.text.contains("/verify-email?token="))
            .cloned()
            .collect()
    };
    let mallory_token = token_of(&app, &links(&mails)[0]);

    // The real owner can still register the address.
    let (owner, status, _) = sign_up(&app, "owner", "owner@example.org").await;
    assert_eq!(status, 200, "an unproven claim does not block the owner");
    assert_eq!(upcoming(&app, &owner).await, Vec::<Value>::new());
    let mails = links(&smtp.wait_for("owner@example.org", 3).await);
    let owner_mail = &mails[1];
    assert!(
        owner_mail.subject.contains("Confirm"),
        "{}",
        owner_mail.subject
    );
    assert_eq!(owner_mail.from, "moim <noreply@moim.test>");

    // Opening the link (the page, as a mail reader would) verifies it.
    let page = app
        .client()
        .get(format!(
            "{}/verify-email?token={}",
            app.base,
            token_of(&app, owner_mail)
        ))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"data-outcome="verified""#), "{html}");
    assert_eq!(email_status(&app, &owner).await["verified"], true);

    // Now the invitation counts for the owner: listed, and straight in.
    let listed = upcoming(&app, &owner).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["role"], "Invitee");
    assert_eq!(enter(&app, &owner, &code).await, "Admitted");

    // Mallory's claim is gone, and her link with it; still a stranger.
    assert_eq!(email_status(&app, &mallory).await["email"], Value::Null);
    assert_eq!(verify(&app, &mallory_token).await, "Invalid");
    assert_eq!(upcoming(&app, &mallory).await, Vec::<Value>::new());
    assert_eq!(enter(&app, &mallory, &code).await, "Waiting");

    // Links work once; made-up ones never.
    assert_eq!(verify(&app, &token_of(&app, owner_mail)).await, "Invalid");
    assert_eq!(verify(&app, "not-a-token").await, "Invalid");
    assert_eq!(verify(&app, "").await, "Invalid");
}

async fn a_verified_address_gets_a_note_not_a_different_answer(backend: Backend) {
    let smtp = SmtpServer::start();
    let app = app_with_mail(backend, &smtp).await;
    let (owner, ..) = sign_up(&app, "owner", "owner@example.org").await;
    let mails = smtp.wait_for("owner@example.org", 1).await;
    assert_eq!(verify(&app, &token_of(&app, &mails[0])).await, "Verified");
    assert_eq!(email_status(&app, &owner).await["verified"], true);

    // A stranger tries the owner's address; someone else a fresh one.
    let (stranger, taken_status, taken_body) = sign_up(&app, "stranger", "OWNER@example.org").await;
    let (_, fresh_status, fresh_body) = sign_up(&app, "newcomer", "fresh@example.org").await;
    assert_eq!(taken_status, 200);
    assert_eq!(
        (taken_status, taken_body),
        (fresh_status, fresh_body),
        "the same answer whether or not the address is someone's"
    );

    // The newcomer gets a link; the owner a note, with no link in it.
    let fresh = smtp.wait_for("fresh@example.org", 1).await;
    assert!(fresh[0]
        .link(&format!("{}/verify-email", app.base))
        .is_some());
    let owner_mails = smtp.wait_for("owner@example.org", 2).await;
    let note = &owner_mails[1];
    assert!(
        note.subject.contains("Someone tried to sign up"),
        "{}",
        note.subject
    );
    assert!(!note.text.contains("verify-email"), "{}", note.text);
    // The stranger's claim stays unproven (and cannot be proved: no link).
    assert_eq!(email_status(&app, &stranger).await["verified"], false);
    assert_eq!(email_status(&app, &owner).await["verified"], true);

    // Usernames are public handles: that one is still reported taken.
    let (_, status, body) = sign_up(&app, "Owner", "other@example.org").await;
    assert_eq!(status, 422);
    assert!(body.contains("UsernameTaken"), "{body}");
    assert!(!body.contains("EmailTaken"), "{body}");
}

async fn invitation_mail_carries_the_link_and_a_calendar_file(backend: Backend) {
    let smtp = SmtpServer::start();
    let app = app_with_mail(backend, &smtp).await;
    let (host, ..) = sign_up(&app, "planner", "").await;
    sign_up(&app, "member", "").await;
    let code = schedule(&app, &host, "member, guest@example.org").await;
    let link = format!("{}/m/{code}", app.base);

    let mails = smtp.wait_for("guest@example.org", 1).await;
    let mail = &mails[0];
    assert!(mail.subject.contains("Budget, Q3"), "{}", mail.subject);
    assert!(mail.text.contains(&link), "{}", mail.text);
    assert!(mail.text.contains("planner"), "{}", mail.text);
    assert_eq!(mail.attachments.len(), 1);
    let file = &mail.attachments[0];
    assert_eq!(file.filename.as_deref(), Some("meeting.ics"));
    assert_eq!(file.content_type, "text/calendar");
    let mut calendars = ical::IcalParser::new(std::io::BufReader::new(file.body.as_bytes()));
    let calendar = calendars.next().expect("one calendar").expect("parses");
    let event = &calendar.events[0].properties;
    let prop = |name: &str| {
        event
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(prop("URL"), link);
    assert_eq!(prop("SUMMARY"), "Budget\\, Q3");

    // Saving the meeting again mails only addresses added since.
    let meeting = meeting(&app, &host, &code).await;
    let response = app
        .call(
            &host,
            "update_meeting",
            &[
                ("code", code.as_str()),
                ("title", "Budget, Q3"),
                (
                    "starts_at_ms",
                    &meeting["starts_at_ms"].as_i64().unwrap().to_string(),
                ),
                ("duration_minutes", "30"),
                ("invitees", "member, guest@example.org, late@example.org"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    smtp.wait_for("late@example.org", 1).await;
    assert_eq!(
        smtp.to("guest@example.org").len(),
        1,
        "no second invitation"
    );
    // Usernames get no mail (their address may be unproven).
    assert_eq!(smtp.messages().len(), 2);
}

async fn invitee_addresses_are_shown_to_hosts_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (host, ..) = sign_up(&app, "host", "").await;
    let (cohost, ..) = sign_up(&app, "cohost", "").await;
    let (member, ..) = sign_up(&app, "member", "").await;
    let (outsider, ..) = sign_up(&app, "outsider", "").await;
    let code = schedule(&app, &host, "member, secret@example.org").await;
    let named = app
        .call(
            &host,
            "set_cohosts",
            &[("code", &code), ("cohosts", "cohost")],
        )
        .await;
    assert_eq!(named.status(), 200);

    let everyone = serde_json::json!(["member", "secret@example.org"]);
    assert_eq!(meeting(&app, &host, &code).await["invitees"], everyone);
    assert_eq!(meeting(&app, &cohost, &code).await["invitees"], everyone);
    // Invitees see who else is coming by username, never addresses.
    assert_eq!(
        meeting(&app, &member, &code).await["invitees"],
        serde_json::json!(["member"])
    );
    for (who, client) in [("signed out", app.client()), ("outsider", outsider)] {
        let seen = meeting(&app, &client, &code).await;
        assert_eq!(seen["invitees"], serde_json::json!([]), "{who}");
        assert!(!seen.to_string().contains("secret@"), "{who}: {seen}");
    }
    // Nor does the server-rendered page carry it.
    let page = app
        .client()
        .get(app.url(&format!("/m/{code}")))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Budget"), "the page rendered");
    assert!(!page.contains("secret@example.org"), "{page}");
}

async fn resending_is_throttled_and_without_mail_the_profile_says_so(backend: Backend) {
    // Without a mail server: stored, unproven, and the status says why.
    let app = spawn_app(backend).await;
    let (client, status, _) = sign_up(&app, "lonely", "lonely@example.org").await;
    assert_eq!(status, 200);
    let status = email_status(&app, &client).await;
    assert_eq!(status["email"], "lonely@example.org");
    assert_eq!(status["verified"], false);
    assert_eq!(status["mail_configured"], false);
    let configured = app.call(&client, "mail_configured", &[]).await;
    assert_eq!(configured.json::<Value>().await.unwrap(), false);
    // The meeting form says invited addresses are not told.
    let form = page(&app, &client, "/meetings/new").await;
    assert!(form.contains(r#"data-mail="off""#), "{form}");
    assert!(form.contains("This server sends no email"), "{form}");
    drop(app);

    let smtp = SmtpServer::start();
    let app = app_with_mail(backend, &smtp).await;
    let (client, ..) = sign_up(&app, "eager", "eager@example.org").await;
    let form = page(&app, &client, "/meetings/new").await;
    assert!(form.contains(r#"data-mail="on""#), "{form}");
    let first = smtp.wait_for("eager@example.org", 1).await;
    // At once again: refused, with a wait.
    let again = app.call(&client, "resend_verification", &[]).await;
    assert_eq!(again.status(), 429);
    // A minute later (the last link made older in the database): a new
    // link, which replaces the old one.
    sqlx::query("UPDATE email_verifications SET created_at = created_at - 61000")
        .execute(&app.state.db)
        .await
        .unwrap();
    let again = app.call(&client, "resend_verification", &[]).await;
    assert_eq!(again.status(), 200);
    let both = smtp.wait_for("eager@example.org", 2).await;
    assert_eq!(verify(&app, &token_of(&app, &first[0])).await, "Invalid");
    assert_eq!(verify(&app, &token_of(&app, &both[1])).await, "Verified");
    assert_eq!(email_status(&app, &client).await["verified"], true);
    // Verified: nothing more to send.
    let done = app.call(&client, "resend_verification", &[]).await;
    assert_eq!(done.status(), 200);
    assert_eq!(smtp.messages().len(), 2);
}

//! Outgoing mail: the boundary the server fills in (SMTP through `lettre` in
//! `moim_server::mail`, or nothing when no mail server is configured), and
//! the messages moim sends.
//!
//! Mail never holds up a request: `send_later` hands a message to a task
//! with a deadline and logs a failure. What the database says (an
//! invitation, a pending verification) is the truth; a lost mail only means
//! someone has to ask again.
//!
//! Messages are in English and Korean at once: who reads them, and in which
//! language, is unknown when they are written (an invited address may have
//! no account at all).

use std::sync::Arc;
use std::time::Duration;

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// e.g. `text/calendar; charset=utf-8; method=PUBLISH`
    pub content_type: String,
    pub body: String,
}

/// One message to one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: String,
    pub subject: String,
    /// Plain text only: nothing a user typed is ever interpreted as markup.
    pub text: String,
    pub attachment: Option<Attachment>,
    /// What kind of mail this is, for logs (addresses are never logged).
    pub kind: &'static str,
}

#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Whether mail goes anywhere at all (pages tell people when it does not).
    fn is_configured(&self) -> bool;
    /// Sends one message. The error is for the log, never for a user.
    async fn send(&self, message: Outgoing) -> Result<(), String>;
}

/// No mail server configured: nothing is sent.
pub struct NoMailer;

#[async_trait::async_trait]
impl Mailer for NoMailer {
    fn is_configured(&self) -> bool {
        false
    }

    async fn send(&self, message: Outgoing) -> Result<(), String> {
        tracing::debug!(
            kind = message.kind,
            "no mail server configured; mail dropped"
        );
        Ok(())
    }
}

pub fn no_mailer() -> Arc<dyn Mailer> {
    Arc::new(NoMailer)
}

/// How long one message may take before it is given up on.
const SEND_DEADLINE: Duration = Duration::from_secs(60);

/// Sends in the background: the request that caused the mail answers at
/// once, whatever the mail server does.
pub fn send_later(mailer: &Arc<dyn Mailer>, message: Outgoing) {
    let mailer = mailer.clone();
    if !mailer.is_configured() {
        return;
    }
    tokio::spawn(async move {
        let kind = message.kind;
        match tokio::time::timeout(SEND_DEADLINE, mailer.send(message)).await {
            Ok(Ok(())) => tracing::info!(kind, "mail sent"),
            Ok(Err(error)) => tracing::warn!(kind, %error, "mail not sent"),
            Err(_) => tracing::warn!(kind, "mail not sent: no answer in time"),
        }
    });
}

// ---------------------------------------------------------------- messages

/// The link that proves an address.
pub fn verification(to: &str, link: &str) -> Outgoing {
    Outgoing {
        to: to.to_string(),
        subject: "Confirm your email address · 이메일 주소 확인 (moim)".to_string(),
        text: format!(
            "Someone (we hope you) signed up for moim with this address.\n\
             Open this link within 24 hours to confirm it:\n\n{link}\n\n\
             If it was not you, ignore this message: the address stays unconfirmed.\n\n\
             ---\n\n\
             누군가(아마 본인) 이 주소로 moim에 가입했습니다.\n\
             24시간 안에 아래 링크를 열어 주소를 확인해 주세요:\n\n{link}\n\n\
             본인이 아니라면 이 메일을 무시하세요. 주소는 확인되지 않은 채로 남습니다.\n"
        ),
        attachment: None,
        kind: "verification",
    }
}

/// To the owner of a verified address that someone else tried to sign up
/// with (the sign-up itself answers as usual, so strangers learn nothing).
pub fn address_in_use(to: &str, public_url: &str) -> Outgoing {
    let url = public_url.trim_end_matches('/');
    Outgoing {
        to: to.to_string(),
        subject: "Someone tried to sign up with your address · 가입 시도 알림 (moim)".to_string(),
        text: format!(
            "Someone tried to create a moim account at {url} with this email address.\n\
             It already belongs to your account, so nothing changed and you need do nothing.\n\
             If it was you, sign in with your existing account instead.\n\n\
             ---\n\n\
             누군가 {url} 에서 이 이메일 주소로 moim 계정을 만들려고 했습니다.\n\
             이 주소는 이미 회원님 계정의 주소이므로 아무것도 바뀌지 않았고, 하실 일은 없습니다.\n\
             본인이었다면 기존 계정으로 로그인하세요.\n"
        ),
        attachment: None,
        kind: "address-in-use",
    }
}

/// What an invitation says about its meeting.
pub struct InvitationDetails<'a> {
    pub title: &'a str,
    pub host_name: &'a str,
    /// e.g. "2026-11-26 09:00 UTC"
    pub starts_utc: &'a str,
    pub duration_minutes: i64,
    pub link: &'a str,
    pub ics: String,
}

pub fn invitation(to: &str, meeting: InvitationDetails<'_>) -> Outgoing {
    let InvitationDetails {
        title,
        host_name,
        starts_utc,
        duration_minutes,
        link,
        ics,
    } = meeting;
    Outgoing {
        to: to.to_string(),
        subject: format!("Invitation · 초대: {title}"),
        text: format!(
            "{host_name} invited you to a meeting on moim.\n\n\
             {title}\n\
             Starts: {starts_utc} ({duration_minutes} min)\n\
             Join: {link}\n\n\
             The attached calendar file adds it to your calendar.\n\n\
             ---\n\n\
             {host_name} 님이 moim 회의에 초대했습니다.\n\n\
             {title}\n\
             시작: {starts_utc} ({duration_minutes}분)\n\
             참여: {link}\n\n\
             첨부된 캘린더 파일로 일정에 추가할 수 있습니다.\n"
        ),
        attachment: Some(Attachment {
            filename: "meeting.ics".to_string(),
            content_type: "text/calendar; charset=utf-8; method=PUBLISH".to_string(),
            body: ics,
        }),
        kind: "invitation",
    }
}

//! Outgoing mail over SMTP (`lettre`), behind `app::mail::Mailer`. Without
//! `--smtp-url` the app gets `app::mail::NoMailer` and sends nothing.
//!
//! The transport is built at start-up but connects only when there is
//! something to send: a mail server that is down at start-up must not keep
//! moim from serving. The URL may carry a password: it is only ever logged
//! through `db::redact`.

use crate::db::redact;
use crate::error::StartupError;
use app::mail::{Mailer, Outgoing};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// The mailer the settings ask for: SMTP, or none.
pub fn from_settings(
    smtp_url: Option<&Url>,
    smtp_from: Option<&str>,
) -> Result<Arc<dyn Mailer>, StartupError> {
    let Some(url) = smtp_url else {
        tracing::info!("no mail server configured (MOIM_SMTP_URL): addresses cannot be confirmed");
        return Ok(app::mail::no_mailer());
    };
    let from: Mailbox =
        smtp_from
            .unwrap_or_default()
            .parse()
            .map_err(|e: lettre::address::AddressError| StartupError::Mail {
                setting: "MOIM_SMTP_FROM",
                reason: e.to_string(),
            })?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
        .map_err(|e| StartupError::Mail {
            setting: "MOIM_SMTP_URL",
            reason: format!("{} ({e})", redact(url.as_str())),
        })?
        .timeout(Some(Duration::from_secs(20)))
        .build();
    tracing::info!(smtp = %redact(url.as_str()), "mail goes through SMTP");
    Ok(Arc::new(SmtpMailer { transport, from }))
}

/// Connects to the mail server and says hello (for `moim check-config`):
/// `Err` with the reason, the password never in it.
pub async fn reach(url: &Url, timeout: Duration) -> Result<(), String> {
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
            .map_err(|e| e.to_string())?
            .timeout(Some(timeout))
            .build();
    match tokio::time::timeout(timeout, transport.test_connection()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err("the server did not accept a connection".to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} seconds", timeout.as_secs())),
    }
}

impl SmtpMailer {
    fn message(&self, mail: Outgoing) -> Result<Message, String> {
        let to: Mailbox = mail.to.parse().map_err(|e| format!("bad recipient: {e}"))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject);
        let built = match mail.attachment {
            None => builder.header(ContentType::TEXT_PLAIN).body(mail.text),
            Some(file) => {
                let content_type =
                    ContentType::parse(&file.content_type).map_err(|e| e.to_string())?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(mail.text))
                        .singlepart(Attachment::new(file.filename).body(file.body, content_type)),
                )
            }
        };
        built.map_err(|e| e.to_string())
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    fn is_configured(&self) -> bool {
        true
    }

    async fn send(&self, mail: Outgoing) -> Result<(), String> {
        let message = self.message(mail)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_means_no_mail() {
        let mailer = from_settings(None, None).unwrap();
        assert!(!mailer.is_configured());
    }

    #[test]
    fn bad_sender_names_the_setting() {
        let url = Url::parse("smtp://user:hunter2@127.0.0.1:2525").unwrap();
        let err = from_settings(Some(&url), Some("not an address"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("MOIM_SMTP_FROM"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    // The transport's connection pool needs a runtime, even unused.
    #[tokio::test]
    async fn attachments_travel_as_a_second_part() {
        let url = Url::parse("smtp://127.0.0.1:2525").unwrap();
        let mailer = SmtpMailer {
            transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
                .unwrap()
                .build(),
            from: "moim <noreply@example.org>".parse().unwrap(),
        };
        let message = mailer
            .message(Outgoing {
                to: "a@example.org".into(),
                subject: "Invitation · 초대".into(),
                text: "hello 안녕".into(),
                attachment: Some(app::mail::Attachment {
                    filename: "meeting.ics".into(),
                    content_type: "text/calendar; charset=utf-8; method=PUBLISH".into(),
                    body: "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".into(),
                }),
                kind: "test",
            })
            .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("multipart/mixed"), "{raw}");
        assert!(raw.contains("filename=\"meeting.ics\""), "{raw}");
        assert!(raw.contains("text/calendar"), "{raw}");
    }
}

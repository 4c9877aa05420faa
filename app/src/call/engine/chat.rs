//! Chat delivery: send with a key, resend until confirmed, merge what
//! arrives.

use super::*;

/// Chat delivery: how far this page has the room's chat, and what it sent
/// that is not confirmed yet.
#[derive(Default)]
pub(super) struct ChatState {
    pub(super) synced_to: Cell<i64>,
    pub(super) pending: RefCell<Vec<PendingChat>>,
}

pub(super) struct PendingChat {
    pub(super) key: String,
    pub(super) text: String,
    pub(super) to: Option<PeerId>,
    pub(super) last_sent_ms: f64,
}

impl Call {
    pub(super) fn my_participant(&self) -> String {
        self.0.participant_id.borrow().clone().unwrap_or_default()
    }

    pub(super) fn after_welcome_chat(&self, resumed_page: bool, head: i64) {
        let synced = self.0.chat.synced_to.get();
        if !resumed_page && synced == 0 && head > crate::protocol::CHAT_PAGE as i64 {
            // A late joiner: the newest page now, older on request.
            self.send(&ClientMessage::ChatHistory { before: head + 1 });
            self.0.chat.synced_to.set(head);
            self.send(&ClientMessage::ChatSync { after: head });
        } else {
            self.send(&ClientMessage::ChatSync { after: synced });
        }
        // Whatever was not confirmed goes again, with the same keys.
        self.resend_chat(false);
    }

    pub fn send_chat(&self, text: String, to: Option<PeerId>) {
        let view = self.view();
        if text.trim().is_empty() {
            view.chat_notice.set(Some(ChatNotice::Empty));
            return;
        }
        if text.chars().count() > crate::protocol::CHAT_MAX_CHARS {
            view.chat_notice.set(Some(ChatNotice::TooLong));
            return;
        }
        view.chat_notice.set(None);
        let key = new_key();
        let to_name = to.as_ref().and_then(|id| {
            view.peers.with_untracked(|peers| {
                peers
                    .iter()
                    .find(|p| &p.peer_id == id)
                    .map(|p| p.display_name.clone())
            })
        });
        let me = view.me.get_untracked();
        view.chat.update(|list| {
            merge_chat(
                list,
                ChatEntry {
                    key: key.clone(),
                    seq: None,
                    sender_id: self.my_participant(),
                    sender_name: me.map(|m| m.display_name).unwrap_or_default(),
                    text: text.clone(),
                    sent_at_ms: None,
                    to_id: None,
                    to_name,
                    mine: true,
                    status: ChatStatus::Pending,
                },
            )
        });
        self.0.chat.pending.borrow_mut().push(PendingChat {
            key: key.clone(),
            text: text.clone(),
            to: to.clone(),
            last_sent_ms: now(),
        });
        self.transmit_chat(&key, &text, to);
    }

    pub(super) fn transmit_chat(&self, key: &str, text: &str, to: Option<PeerId>) {
        let sent = self.send(&ClientMessage::ChatSend {
            key: key.to_string(),
            text: text.to_string(),
            to,
        });
        if let Some(p) = self
            .0
            .chat
            .pending
            .borrow_mut()
            .iter_mut()
            .find(|p| p.key == key)
        {
            p.last_sent_ms = now();
        }
        if !sent {
            self.set_chat_status(key, ChatStatus::Retrying);
        }
    }

    /// Sends unconfirmed messages again (same keys): all of them, or with
    /// `stale_only` those unconfirmed for `decide::CHAT_RESEND_MS`, shown as
    /// retrying.
    pub(super) fn resend_chat(&self, stale_only: bool) {
        let pending: Vec<(String, String, Option<PeerId>)> = self
            .0
            .chat
            .pending
            .borrow()
            .iter()
            .filter(|p| decide::resend_chat_now(!stale_only, p.last_sent_ms, now()))
            .map(|p| (p.key.clone(), p.text.clone(), p.to.clone()))
            .collect();
        for (key, text, to) in pending {
            if stale_only {
                self.set_chat_status(&key, ChatStatus::Retrying);
            }
            self.transmit_chat(&key, &text, to);
        }
    }

    pub(super) fn is_pending(&self, key: &str) -> bool {
        self.0.chat.pending.borrow().iter().any(|p| p.key == key)
    }

    pub(super) fn set_chat_status(&self, key: &str, status: ChatStatus) {
        self.view().chat.update(|list| {
            if let Some(e) = list
                .iter_mut()
                .find(|e| e.mine && e.seq.is_none() && e.key == key)
            {
                e.status = status;
            }
        });
    }

    pub(super) fn chat_failed(&self, key: &str, final_: bool) {
        if final_ {
            self.0.chat.pending.borrow_mut().retain(|p| p.key != key);
            self.set_chat_status(key, ChatStatus::Failed);
        } else {
            self.set_chat_status(key, ChatStatus::Retrying);
        }
    }

    pub(super) fn on_chat_ack(&self, key: &str, seq: i64, sent_at_ms: i64) {
        self.0.chat.pending.borrow_mut().retain(|p| p.key != key);
        self.view().chat.update(|list| {
            if let Some(at) = list
                .iter()
                .position(|e| e.mine && e.seq.is_none() && e.key == key)
            {
                let mut entry = list.remove(at);
                entry.seq = Some(seq);
                entry.sent_at_ms = Some(sent_at_ms);
                entry.status = ChatStatus::Sent;
                merge_chat(list, entry);
            }
        });
    }

    pub(super) fn entry_of(&self, message: ChatMessage) -> ChatEntry {
        let mine = message.sender_id == self.my_participant();
        ChatEntry {
            key: message.key,
            seq: Some(message.seq),
            sender_id: message.sender_id,
            sender_name: message.sender_name,
            text: message.text,
            sent_at_ms: Some(message.sent_at_ms),
            to_id: message.to_id,
            to_name: message.to_name,
            mine,
            status: ChatStatus::Sent,
        }
    }

    pub(super) fn on_chat(&self, message: ChatMessage, live: bool) {
        let view = self.view();
        let seq = message.seq;
        let synced = self.0.chat.synced_to.get();
        let from_other = message.sender_id != self.my_participant();
        let sender = message.sender_name.clone();
        let entry = self.entry_of(message);
        let is_new = view
            .chat
            .with_untracked(|list| !list.iter().any(|e| e.seq == Some(seq)));
        view.chat.update(|list| merge_chat(list, entry));
        if live && is_new && from_other && !view.chat_open.get_untracked() {
            view.chat_unread.update(|n| *n += 1);
            view.tell(crate::call::Activity::Message(sender));
        }
        if seq == synced + 1 {
            self.0.chat.synced_to.set(seq);
        } else if seq > synced + 1 {
            // Something in between never arrived (or is private to
            // others): the database fills the gap.
            self.send(&ClientMessage::ChatSync { after: synced });
        }
    }

    pub(super) fn on_chat_batch(&self, messages: Vec<ChatMessage>, older: bool, more: bool) {
        let view = self.view();
        let newest = messages.iter().map(|m| m.seq).max();
        let entries: Vec<ChatEntry> = messages.into_iter().map(|m| self.entry_of(m)).collect();
        view.chat.update(|list| {
            for entry in entries {
                merge_chat(list, entry);
            }
        });
        if older {
            view.chat_older.set(more);
            return;
        }
        if let Some(newest) = newest {
            if newest > self.0.chat.synced_to.get() {
                self.0.chat.synced_to.set(newest);
            }
        }
        if more {
            let after = self.0.chat.synced_to.get();
            self.send(&ClientMessage::ChatSync { after });
        }
        if view
            .chat
            .with_untracked(|list| list.first().and_then(|e| e.seq))
            .unwrap_or(1)
            > 1
        {
            view.chat_older.set(true);
        }
    }

    pub fn load_older_chat(&self) {
        let before = self
            .view()
            .chat
            .with_untracked(|list| list.iter().filter_map(|e| e.seq).min())
            .unwrap_or(i64::MAX);
        self.send(&ClientMessage::ChatHistory { before });
    }
}

/// A random idempotency key for a chat message.
pub(super) fn new_key() -> String {
    let mut bytes = [0u8; 16];
    let filled = window()
        .crypto()
        .ok()
        .and_then(|c| c.get_random_values_with_u8_array(&mut bytes).ok())
        .is_some();
    if !filled {
        for b in bytes.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! Ids as their own types, so a room id cannot be passed where an instance
//! id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_string())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

string_id!(
    /// A meeting's call: the meeting's database id.
    RoomId
);

string_id!(
    /// One running moim process. Random per start: a restarted process is a
    /// new instance (what it held before is gone with it).
    InstanceId
);

impl InstanceId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_started_apart_have_different_ids() {
        assert_ne!(InstanceId::random(), InstanceId::random());
    }

    #[test]
    fn an_id_shows_and_serialises_as_its_text() {
        let room = RoomId::from("m-1");
        assert_eq!(room.to_string(), "m-1");
        assert_eq!(
            serde_json::to_string(&room).ok().as_deref(),
            Some("\"m-1\"")
        );
    }
}

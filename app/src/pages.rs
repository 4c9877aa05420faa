//! One module per page.
mod account;
mod home;
mod lobby;
mod meeting_frame;
mod meetings;
mod not_found;
mod require_user;
mod room;
mod selftest;

pub use account::{GuestPage, ProfilePage, SignInPage, SignUpPage, VerifyEmailPage};
pub use home::HomePage;
pub use lobby::{KnockPanel, LobbyPage};
pub use meetings::{EditMeetingPage, MeetingPage, MeetingsPage, NewMeetingPage};
pub use not_found::NotFound;
pub use require_user::RequireUser;
pub use room::RoomPage;
pub use selftest::SelfTestPage;

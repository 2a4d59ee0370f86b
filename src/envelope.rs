//! What the MTA tells us about a message besides its bytes.

use std::net::IpAddr;

/// The SMTP envelope and session facts of one message. Every field is optional
/// because `check` on a file knows none of them, and an MTA may not send them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub client_addr: Option<IpAddr>,
    pub client_name: Option<String>,
    pub helo: Option<String>,
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
    /// The SASL login name (`{auth_authen}`), set for authenticated submission.
    pub auth_user: Option<String>,
    pub queue_id: Option<String>,
}

impl Envelope {
    /// The queue id for log lines, or `NOQUEUE` like Postfix prints.
    pub fn log_id(&self) -> &str {
        self.queue_id.as_deref().unwrap_or("NOQUEUE")
    }
}

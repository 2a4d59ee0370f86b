//! Services that send mail on someone's behalf: calendar invitations,
//! document sharing, e-signature, ticket and chat notifications. They show a
//! person's name ("Taro Yamada (via Google Docs)") over the service's own
//! address, which is the shape of an impersonation but not one.

/// Registrable domains of services that send notifications on a person's
/// behalf. Replaced by `[display_name] services` when that key is set.
pub const DEFAULT_SERVICES: &[&str] = &[
    // Calendars, documents, meetings
    "google.com",
    "microsoft.com",
    "sharepointonline.com",
    "office.com",
    "office365.com",
    "dropbox.com",
    "dropboxmail.com",
    "box.com",
    "zoom.us",
    "webex.com",
    "calendly.com",
    "wetransfer.com",
    "notion.so",
    "canva.com",
    "figma.com",
    // E-signature
    "docusign.net",
    "docusign.com",
    "adobesign.com",
    "echosign.com",
    "cloudsign.jp",
    // Tickets, projects, code review
    "atlassian.net",
    "atlassian.com",
    "zendesk.com",
    "freshdesk.com",
    "servicenow.com",
    "service-now.com",
    "github.com",
    "gitlab.com",
    "bitbucket.org",
    "asana.com",
    "trello.com",
    "backlog.jp",
    "backlog.com",
    // Chat and groupware
    "slack.com",
    "chatwork.com",
    "cybozu.com",
    "linkedin.com",
    "facebookmail.com",
    "salesforce.com",
];

//! malspam-milter: a milter that stops Emotet-style malspam.
//!
//! The [`scan`] core takes an [`Envelope`] and raw message bytes and returns a
//! [`Report`]; the milter daemon ([`milter`]) and the offline `check` command
//! ([`cli`]) are thin front ends over it.

#![forbid(unsafe_code)]

pub mod calendar;
pub mod cli;
pub mod config;
pub mod detector;
pub mod detectors;
pub mod domains;
pub mod effects;
pub mod envelope;
pub mod formats;
pub mod headers;
pub mod input;
pub mod metrics;
pub mod milter;
pub mod names;
pub mod policy;
pub mod quarantine;
pub mod report;
pub mod sanitize;
pub mod scan;
pub mod security;
pub mod store;
pub mod view;
pub mod web;

/// Password candidates from a mail's text: a derivation of the view.
pub use view::password;

pub use config::Config;
pub use envelope::Envelope;
pub use report::{Finding, Report, Verdict};
pub use scan::Engine;

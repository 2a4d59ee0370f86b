//! Parsers of the file formats malspam carries, on bytes alone.
//!
//! A format module knows nothing of mail, the message view or detectors: it
//! takes a file's bytes and a [`Budget`] and says what it found inside —
//! files to scan again ([`Embedded`]), facts a reviewer should read
//! ([`Indicator`]) and encrypted items ([`EncryptedItem`]). The view puts the
//! embedded files back into the attachment tree (so every detector sees
//! them) and hangs the indicators on the node; the `payload` detector turns
//! indicators into findings; the policy alone decides.
//!
//! Every opener is hostile-input code: it never panics on any bytes, never
//! recurses on attacker-controlled depth without a bound, charges every byte
//! it inflates, decodes or decrypts to the budget before allocating it, and
//! checks the deadline inside its loops. When it stops early it says so in
//! [`Opened::limits`], which becomes `scan.limit`.

pub mod disk_image;
pub mod html;
pub mod le;
pub mod lnk;
pub mod office_crypto;
pub mod ole_objects;
pub mod onenote;
pub mod ooxml;
pub mod padding;
pub mod pdf;
pub mod rar;
pub mod rtf;
pub mod script;
pub mod sevenz;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

/// The per-message budget every parser draws on: a wall-clock deadline and
/// a count of bytes that may be produced (inflated, decoded, decrypted,
/// extracted) across all formats and all attachments of one message.
///
/// Shared by reference (`&Budget`): the counter is atomic, so the view and
/// the detectors draw on the same budget without `&mut` plumbing.
#[derive(Debug)]
pub struct Budget {
    deadline: Instant,
    bytes_left: AtomicU64,
    /// Largest output/input ratio allowed for one decompression that
    /// produces more than [`Budget::RATIO_FLOOR`] bytes.
    max_ratio: u64,
}

/// Why the budget refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exhausted {
    /// The message's scan deadline has passed.
    #[error("the scan's time budget ran out")]
    Time,
    /// The message's byte budget is spent.
    #[error("the message's decompression budget is spent")]
    Bytes,
    /// This item inflates past the allowed ratio (a bomb).
    #[error("it inflates past the allowed compression ratio")]
    Ratio,
}

impl Budget {
    /// Outputs up to this size are never refused for their ratio alone
    /// (tiny files compress absurdly well and harm nobody).
    pub const RATIO_FLOOR: u64 = 1 << 20;

    pub fn new(deadline: Instant, max_bytes: u64, max_ratio: u64) -> Budget {
        Budget {
            deadline,
            bytes_left: AtomicU64::new(max_bytes),
            max_ratio: max_ratio.max(1),
        }
    }

    /// A generous budget for tests and tools: one minute, 1 GiB, ratio 1000.
    pub fn generous() -> Budget {
        Budget::new(
            Instant::now() + std::time::Duration::from_secs(60),
            1 << 30,
            1000,
        )
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// True once the deadline has passed: loops check this and stop.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Bytes that may still be produced.
    pub fn bytes_left(&self) -> u64 {
        self.bytes_left.load(Ordering::Relaxed)
    }

    /// Charge `n` bytes about to be produced. Call it *before* allocating
    /// or reading them; on `Err` produce nothing more.
    pub fn take(&self, n: u64) -> Result<(), Exhausted> {
        if self.expired() {
            return Err(Exhausted::Time);
        }
        let mut left = self.bytes_left.load(Ordering::Relaxed);
        loop {
            if n > left {
                // Spend what is left, so later callers stop too.
                self.bytes_left.store(0, Ordering::Relaxed);
                return Err(Exhausted::Bytes);
            }
            match self.bytes_left.compare_exchange_weak(
                left,
                left - n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => left = now,
            }
        }
    }

    /// Count bytes already produced under a cap from [`Budget::cap_for`]
    /// (a reader stopped at the cap); never fails, saturates at zero.
    pub fn charge(&self, n: u64) {
        let _ = self
            .bytes_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(n))
            });
    }

    /// The most bytes one item of `compressed` input may produce: what is
    /// left of the budget, capped by the ratio (never below the floor).
    /// Use it as the `take(cap + 1)` limit of a decoder's reader.
    pub fn cap_for(&self, compressed: u64) -> u64 {
        let by_ratio = compressed
            .saturating_mul(self.max_ratio)
            .max(Self::RATIO_FLOOR);
        self.bytes_left().min(by_ratio)
    }

    /// Check a declared output size against the ratio before inflating.
    pub fn check_ratio(&self, compressed: u64, declared: u64) -> Result<(), Exhausted> {
        if declared > Self::RATIO_FLOOR && declared > compressed.saturating_mul(self.max_ratio) {
            Err(Exhausted::Ratio)
        } else {
            Ok(())
        }
    }
}

/// What an opener found in one file.
#[derive(Debug, Default)]
pub struct Opened {
    /// Files inside, to be scanned again as attachments (their type is told
    /// from their bytes by the view, never from `name`).
    pub embedded: Vec<Embedded>,
    /// Facts about the file a reviewer should read.
    pub indicators: Vec<Indicator>,
    /// Encrypted items inside (archive entries, encrypted documents).
    pub encrypted: Vec<EncryptedItem>,
    /// Why the opener stopped short (a limit, the deadline, damaged data
    /// past which nothing could be read). Each becomes `scan.limit`
    /// evidence; no text from the file beyond names.
    pub limits: Vec<String>,
}

impl Opened {
    pub fn is_empty(&self) -> bool {
        self.embedded.is_empty()
            && self.indicators.is_empty()
            && self.encrypted.is_empty()
            && self.limits.is_empty()
    }

    pub fn indicator(&mut self, kind: IndicatorKind, detail: impl Into<String>) {
        self.indicators.push(Indicator {
            kind,
            detail: detail.into(),
        });
    }
}

/// A file found inside another.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The name the container gives it (archive entry, OLE Package file
    /// name, `<a download>` name), if any.
    pub name: Option<String>,
    pub data: Bytes,
    /// How it was found, for evidence: "ISO entry", "RTF \\objdata",
    /// "OneNote file data", "HTML atob() blob", ...
    pub how: &'static str,
    /// The size the container declares for it, when it declares one and
    /// that differs from what was read (padding, truncation).
    pub declared_size: Option<u64>,
    /// True when it came out of decryption with a password.
    pub decrypted: bool,
}

impl Embedded {
    pub fn new(name: Option<String>, data: impl Into<Bytes>, how: &'static str) -> Embedded {
        Embedded {
            name,
            data: data.into(),
            how,
            declared_size: None,
            decrypted: false,
        }
    }
}

/// One fact about a file. `detail` is raw text from the file (a URL, a
/// command line, a CLSID, a name): the detector sanitises and defangs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    pub kind: IndicatorKind,
    pub detail: String,
}

/// The kinds of fact openers report. The `payload` detector maps each to a
/// rule; the policy scores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndicatorKind {
    /// An Equation Editor object (CVE-2017-11882 / CVE-2018-0802): ProgID
    /// `Equation.3` or its CLSID 0002CE02-0000-0000-C000-000000000046 (and
    /// variants), in RTF or OLE.
    EquationEditor,
    /// An OLE Package object (`Ole10Native`); detail: the packaged file's
    /// name (and its command, if any). The file itself is in `embedded`.
    OlePackage,
    /// Any other embedded OLE object; detail: its ProgID / CLSID.
    OleObject,
    /// An object that updates (runs its link) when the document opens: RTF
    /// `\objupdate`, OOXML `UpdateMode="Always"`.
    AutoUpdate,
    /// An ActiveX control; detail: its CLSID.
    ActiveX,
    /// An OOXML relationship to an external target; detail is
    /// `"<relationship type>: <target>"`, e.g.
    /// `"attachedTemplate: https://evil.example/t.dotm"`. Types that
    /// matter: attachedTemplate, oleObject, frame, subDocument.
    ExternalReference,
    /// A Windows shortcut's command; detail `"<target> <arguments>"`, with
    /// the working directory after ` (in <dir>)` when there is one.
    ShortcutCommand,
    /// HTML/SVG/HTA whose script builds a file (atob, Blob,
    /// msSaveOrOpenBlob, createObjectURL, big encoded arrays, `<a download>`);
    /// detail names the techniques and the file name if known.
    HtmlSmuggling,
    /// An HTML application or page that runs script through ActiveX /
    /// WScript (HTA-style execution); detail names the calls.
    ScriptExecution,
    /// A document or file declared much larger than its content / padded
    /// to defeat size limits; detail gives declared and stored sizes.
    Padded,
    /// The file is an encrypted Office document; detail: the scheme.
    EncryptedDocument,
    /// Decrypted with the well-known default password (Excel's
    /// `VelvetSweatshop`): opens without a prompt, hides from scanners.
    DefaultPassword,
    /// Structure that only an evasion would produce (an RTF header
    /// broken on purpose, an object hidden in junk); detail says what.
    Malformed,
    /// A link a document shows its reader (PDF `/URI`); detail: the URL.
    Link,
    /// A document action that starts a program (PDF `/Launch`); detail:
    /// the program and arguments when given.
    LaunchAction,
    /// Script that runs when a document opens (PDF `/OpenAction` or `/AA`
    /// with JavaScript); detail says which.
    AutoScript,
}

/// An encrypted item inside a file (an archive entry, an encrypted
/// document's package).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedItem {
    pub name: String,
    /// "AES-256", "ZipCrypto", "RC4 CryptoAPI", "ECMA-376 agile", ...
    pub method: String,
    /// The password that opened it (a candidate given to the opener), if
    /// one did; its content is then in `embedded` with `decrypted = true`.
    pub opened_with: Option<String>,
}

/// Passwords an opener may try on encrypted content, most likely first:
/// those mined from the mail. Bounded by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Passwords<'a> {
    pub candidates: &'a [String],
    /// Attempts allowed in all (each candidate on each item counts one).
    pub max_attempts: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn budget_counts_bytes_across_callers() {
        let b = Budget::new(Instant::now() + Duration::from_secs(60), 100, 10);
        assert_eq!(b.take(60), Ok(()));
        assert_eq!(b.take(50), Err(Exhausted::Bytes));
        // Refused once, refused for everyone after.
        assert_eq!(b.take(1), Err(Exhausted::Bytes));
    }

    #[test]
    fn budget_refuses_after_the_deadline() {
        let b = Budget::new(Instant::now(), 100, 10);
        assert_eq!(b.take(1), Err(Exhausted::Time));
        assert!(b.expired());
    }

    #[test]
    fn ratio_applies_above_the_floor_only() {
        let b = Budget::new(Instant::now() + Duration::from_secs(60), u64::MAX, 100);
        assert_eq!(b.check_ratio(100, 1 << 20), Ok(()));
        assert_eq!(b.check_ratio(100, 64 << 20), Err(Exhausted::Ratio));
        assert_eq!(b.check_ratio(1 << 20, 64 << 20), Ok(()));
        assert_eq!(b.cap_for(10), Budget::RATIO_FLOOR);
    }
}

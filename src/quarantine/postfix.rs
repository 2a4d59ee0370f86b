//! Postfix's hold queue, through Postfix's own tools: `postqueue -j` lists
//! the queue (one JSON object per line), `postcat` prints a queued message,
//! `postsuper -H` releases (then `postqueue -i` delivers at once, or
//! `postsuper -r` requeues mail held nearly long enough to expire) and
//! `postsuper -d ID hold` deletes. Every command
//! gets `-c CONFIG_DIR` and runs without a shell; queue ids are checked
//! before they reach a command line.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::QuarantineConfig;

/// Postfix's tools failed, or said something we cannot read. The text is
/// what the CLI prints and the web page logs and audits.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// `postqueue -j` printed a line that is not a queue entry (a Postfix
    /// too old for `-j` prints text).
    #[error("postqueue -j output line {line}: {source}")]
    QueueLine {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// The message is not (or no longer) in the hold queue.
    #[error("{id}: no such message in the hold queue")]
    NotHeld { id: String },
    /// `postsuper -H` said it released no message.
    #[error("{id}: postsuper released nothing (no longer held?)")]
    NotReleased { id: String },
    /// `postsuper -r` said it requeued no message.
    #[error("{id}: postsuper requeued nothing (no longer held?)")]
    NotRequeued { id: String },
    /// `postsuper -d` said it deleted no message.
    #[error("{id}: postsuper deleted nothing (no longer held?)")]
    NotDeleted { id: String },
    /// `postconf -h` printed a queue lifetime that is not a Postfix time.
    #[error("postconf: cannot read the time {value:?}")]
    BadTime { value: String },
    /// A Postfix tool (or the `privileged` helper) could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// A Postfix tool ran and failed; `stderr` is Postfix's words.
    #[error("{program} {args}: {status} {stderr}")]
    Failed {
        program: String,
        /// The arguments after `-c CONFIG_DIR`, space-separated.
        args: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// Not a queue id: never put on a command line. `id` is already
    /// escaped for a terminal.
    #[error("{id:?} is not a Postfix queue id (letters and digits only)")]
    BadId { id: String },
}

/// The queue Postfix's milter quarantine action (and `HOLD`) puts mail in.
pub const HOLD: &str = "hold";

/// One message of `postqueue -j`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub queue_name: String,
    pub queue_id: String,
    /// Unix time the message arrived.
    pub arrival_time: u64,
    pub message_size: u64,
    /// Envelope sender; Postfix writes `MAILER-DAEMON` for the null sender.
    pub sender: String,
    pub recipients: Vec<QueueRecipient>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRecipient {
    pub address: String,
    /// Why delivery was deferred (deferred queue only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_reason: Option<String>,
}

/// Parse `postqueue -j` output. A line that is not a queue entry is an
/// error naming its line number (a Postfix too old for `-j` prints text).
pub fn parse_postqueue_json(text: &str) -> Result<Vec<QueueEntry>, QuarantineError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: QueueEntry =
            serde_json::from_str(line).map_err(|source| QuarantineError::QueueLine {
                line: i + 1,
                source,
            })?;
        out.push(entry);
    }
    Ok(out)
}

/// Postfix queue ids are letters and digits (short: hex; long: base 52
/// plus digits). Anything else never reaches a command line, nor does
/// `ALL`, which postsuper reads as "every message".
pub fn valid_queue_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && !id.eq_ignore_ascii_case("ALL")
}

/// The count in postsuper's summary line, e.g. "postsuper: Released from
/// hold: 1 message" (`what` = "Released from hold") or "Deleted: 1 message".
pub fn postsuper_count(output: &str, what: &str) -> Option<usize> {
    output.lines().find_map(|line| {
        let rest = line.strip_prefix("postsuper: ").unwrap_or(line);
        let n = rest.strip_prefix(what)?.strip_prefix(": ")?;
        n.split_whitespace().next()?.parse().ok()
    })
}

/// One Postfix instance, as named by `[quarantine]`.
pub struct Postfix<'a> {
    config: &'a QuarantineConfig,
}

impl<'a> Postfix<'a> {
    pub fn new(config: &'a QuarantineConfig) -> Self {
        Postfix { config }
    }

    /// Every queued message (all queues).
    pub fn queue(&self) -> Result<Vec<QueueEntry>, QuarantineError> {
        let out = self.stdout(&self.config.postqueue, &["-j"])?;
        parse_postqueue_json(&String::from_utf8_lossy(&out))
    }

    /// The messages in the hold queue, oldest first.
    pub fn held(&self) -> Result<Vec<QueueEntry>, QuarantineError> {
        let mut held: Vec<QueueEntry> = self
            .queue()?
            .into_iter()
            .filter(|e| e.queue_name == HOLD)
            .collect();
        held.sort_by(|a, b| (a.arrival_time, &a.queue_id).cmp(&(b.arrival_time, &b.queue_id)));
        Ok(held)
    }

    /// The held message with this id, or an error saying it is not held.
    pub fn held_entry(&self, id: &str) -> Result<QueueEntry, QuarantineError> {
        check_id(id)?;
        self.held()?
            .into_iter()
            .find(|e| e.queue_id == id)
            .ok_or_else(|| QuarantineError::NotHeld { id: id.to_string() })
    }

    /// The message's header block as queued (`postcat -h -q ID`).
    pub fn headers(&self, id: &str) -> Result<Vec<u8>, QuarantineError> {
        check_id(id)?;
        self.stdout(&self.config.postcat, &["-h", "-q", id])
    }

    /// The whole message, headers and body (`postcat -bh -q ID`).
    pub fn message(&self, id: &str) -> Result<Vec<u8>, QuarantineError> {
        check_id(id)?;
        self.stdout(&self.config.postcat, &["-bh", "-q", id])
    }

    /// Release from hold (`postsuper -H ID`); Postfix delivers it next.
    pub fn release(&self, id: &str) -> Result<(), QuarantineError> {
        check_id(id)?;
        let out = self.run(&self.config.postsuper, &["-H", id])?;
        match postsuper_count(&String::from_utf8_lossy(&out), "Released from hold") {
            Some(1) => Ok(()),
            _ => Err(QuarantineError::NotReleased { id: id.to_string() }),
        }
    }

    /// Deliver now (`postqueue -i ID`): without it a released message
    /// waits for the next queue run, up to `queue_run_delay` (300 s).
    pub fn flush(&self, id: &str) -> Result<(), QuarantineError> {
        check_id(id)?;
        self.run(&self.config.postqueue, &["-i", id]).map(|_| ())
    }

    /// Requeue (`postsuper -r ID hold`), then wake pickup (`postkick`): the
    /// message gets a new queue file and arrival time, goes through cleanup
    /// again (never the milters, see postsuper(1)) and is delivered at once.
    pub fn requeue(&self, id: &str) -> Result<(), QuarantineError> {
        check_id(id)?;
        let out = self.run(&self.config.postsuper, &["-r", id, HOLD])?;
        match postsuper_count(&String::from_utf8_lossy(&out), "Requeued") {
            Some(1) => {}
            _ => return Err(QuarantineError::NotRequeued { id: id.to_string() }),
        }
        // The message waits in maildrop until pickup looks (every 60 s):
        // wake it as postdrop does.
        self.run(&self.config.postkick, &["public", "pickup", "W"])
            .map(|_| ())
    }

    /// The shorter of `maximal_queue_lifetime` and `bounce_queue_lifetime`,
    /// in seconds, from `postconf -h`.
    pub fn queue_lifetime(&self) -> Result<u64, QuarantineError> {
        let out = self.stdout(
            &self.config.postconf,
            &["-h", "maximal_queue_lifetime", "bounce_queue_lifetime"],
        )?;
        let text = String::from_utf8_lossy(&out);
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                postfix_time(l.trim()).ok_or_else(|| QuarantineError::BadTime {
                    value: l.trim().to_string(),
                })
            })
            .try_fold(u64::MAX, |min, t| t.map(|t| min.min(t)))
    }

    /// Release a held message so that it is delivered now: `postsuper -H`
    /// then `postqueue -i`; or, when it was held for `fraction` of the
    /// queue lifetime or longer (it would bounce as expired),
    /// `postsuper -r`. Returns true when it was requeued.
    pub fn release_now(
        &self,
        entry: &QueueEntry,
        now: u64,
        fraction: f64,
    ) -> Result<bool, QuarantineError> {
        let lifetime = self.queue_lifetime()?;
        let held_for = now.saturating_sub(entry.arrival_time);
        if held_for as f64 >= lifetime as f64 * fraction {
            self.requeue(&entry.queue_id)?;
            return Ok(true);
        }
        self.release(&entry.queue_id)?;
        self.flush(&entry.queue_id)?;
        Ok(false)
    }

    /// Delete from the hold queue only (`postsuper -d ID hold`), so a
    /// mistyped id can never remove mail on its way elsewhere.
    pub fn delete(&self, id: &str) -> Result<(), QuarantineError> {
        check_id(id)?;
        let out = self.run(&self.config.postsuper, &["-d", id, HOLD])?;
        match postsuper_count(&String::from_utf8_lossy(&out), "Deleted") {
            Some(1) => Ok(()),
            _ => Err(QuarantineError::NotDeleted { id: id.to_string() }),
        }
    }

    /// `PROGRAM -c CONFIG_DIR ARGS`, no shell; stdout and stderr together
    /// (postsuper reports on stderr). A failure carries Postfix's words.
    fn run(&self, program: &str, args: &[&str]) -> Result<Vec<u8>, QuarantineError> {
        let out = self.output(program, args)?;
        let mut all = out.stdout;
        all.extend_from_slice(&out.stderr);
        Ok(all)
    }

    /// Like [`Self::run`], stdout alone: what postqueue -j, postcat and
    /// postconf print as data. Their warnings (a main.cf entry given twice,
    /// ...) go to stderr and must not end up in a message or a listing.
    fn stdout(&self, program: &str, args: &[&str]) -> Result<Vec<u8>, QuarantineError> {
        Ok(self.output(program, args)?.stdout)
    }

    fn output(
        &self,
        program: &str,
        args: &[&str],
    ) -> Result<std::process::Output, QuarantineError> {
        // postcat reads queue files (mode 0700, owner postfix), postsuper
        // is for root only and postkick writes to pickup's fifo: run them
        // through `[quarantine] privileged` (e.g. sudo) when one is set.
        let needs_root = [
            &self.config.postcat,
            &self.config.postsuper,
            &self.config.postkick,
        ]
        .contains(&&program.to_string());
        let mut command = match self.config.privileged.split_first() {
            Some((helper, helper_args)) if needs_root => {
                let mut c = Command::new(helper);
                c.args(helper_args).arg(program);
                c
            }
            _ => Command::new(program),
        };
        let out = command
            .arg("-c")
            .arg(Path::new(&self.config.postfix_config_dir))
            .args(args)
            .output()
            .map_err(|source| QuarantineError::Spawn {
                program: program.to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(QuarantineError::Failed {
                program: program.to_string(),
                args: args.join(" "),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out)
    }
}

/// A Postfix time value (`5d`, `300s`, `2h`, `1w`; a bare number is days,
/// the unit of the queue lifetimes) in seconds.
pub fn postfix_time(value: &str) -> Option<u64> {
    let (number, unit) = match value.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => value.split_at(i),
        None => (value, "d"),
    };
    let n: u64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return None,
    };
    n.checked_mul(scale)
}

fn check_id(id: &str) -> Result<(), QuarantineError> {
    if valid_queue_id(id) {
        Ok(())
    } else {
        Err(QuarantineError::BadId {
            id: super::clean(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/postfix");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    #[test]
    fn parses_recorded_postqueue_json() {
        let entries = parse_postqueue_json(&fixture("postqueue-j.jsonl")).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0],
            QueueEntry {
                queue_name: "hold".into(),
                queue_id: "687579D8095".into(),
                arrival_time: 1795308472,
                message_size: 14671,
                sender: "info@kansai-unrelated.example".into(),
                recipients: vec![QueueRecipient {
                    address: "yuki@customer.example".into(),
                    delay_reason: None
                }],
            }
        );
        let addrs: Vec<&str> = entries[1]
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(addrs, ["z@w.example", "o@w.example"]);
        assert_eq!(entries[2].sender, "MAILER-DAEMON", "null sender");

        let mixed = parse_postqueue_json(&fixture("postqueue-j-mixed.jsonl")).unwrap();
        assert_eq!(mixed[0].queue_name, "deferred");
        assert_eq!(
            mixed[0].recipients[0].delay_reason.as_deref(),
            Some("deferred transport")
        );
        assert_eq!(mixed[1].queue_name, HOLD);
    }

    #[test]
    fn text_output_is_an_error_with_its_line() {
        let err = parse_postqueue_json("Mail queue is empty\n").unwrap_err();
        assert!(
            err.to_string().starts_with("postqueue -j output line 1:"),
            "{err}"
        );
        // The JSON error is kept as the source.
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(parse_postqueue_json("").unwrap(), vec![]);
    }

    #[test]
    fn queue_ids() {
        assert!(valid_queue_id("687579D8095"));
        assert!(valid_queue_id("4dZ3Rq1x2Vz9Kq"));
        for bad in [
            "", "ALL", "all", "-d", "../etc", "ID hold", "A;B", "6875\n79", "ＡＢ",
        ] {
            assert!(!valid_queue_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn postfix_times() {
        assert_eq!(postfix_time("5d"), Some(5 * 86400));
        assert_eq!(postfix_time("5"), Some(5 * 86400), "days by default");
        assert_eq!(postfix_time("300s"), Some(300));
        assert_eq!(postfix_time("2h"), Some(7200));
        assert_eq!(postfix_time("1w"), Some(604800));
        assert_eq!(postfix_time("0"), Some(0));
        for bad in ["", "d", "5x", "-1d", "99999999999999999999d"] {
            assert_eq!(postfix_time(bad), None, "{bad:?}");
        }
        assert_eq!(
            postsuper_count("postsuper: Requeued: 1 message\n", "Requeued"),
            Some(1)
        );
    }

    #[test]
    fn parses_recorded_postsuper_summaries() {
        assert_eq!(
            postsuper_count(&fixture("postsuper-H.txt"), "Released from hold"),
            Some(1)
        );
        assert_eq!(
            postsuper_count(&fixture("postsuper-d.txt"), "Deleted"),
            Some(1)
        );
        assert_eq!(
            postsuper_count(
                "postsuper: Released from hold: 0 messages\n",
                "Released from hold"
            ),
            Some(0)
        );
        assert_eq!(postsuper_count("", "Deleted"), None);
    }
}

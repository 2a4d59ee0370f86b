//! The notify command: run once when a hold episode starts, with the
//! episode's facts as arguments (never message content), without a shell,
//! on its own thread so the scan does not wait, and killed after
//! `notify_timeout_secs`. At most `notify_max_running` run at once.
//!
//! Placeholders are filled in one pass, so a value (an account name, a
//! reason quoting evidence) cannot bring in another placeholder; values are
//! one line without control characters; and a value cannot turn an
//! argument into an option (`{account}` = `-oProxyCommand=…`).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::holds::Episode;
use crate::calendar::iso_utc;

/// How a notify run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOutcome {
    Exited(Option<i32>),
    TimedOut,
    CannotStart(String),
}

/// The notify command was not run: its arguments, filled in, would be
/// unsafe. Logged as `notify command not run: TEXT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// A value would turn argument `index` into an option.
    #[error("argument {index} ({template:?}) would start with \"-\" and be read as an option: {expanded:?}")]
    ReadAsOption {
        index: usize,
        /// The argument as configured.
        template: String,
        /// As filled in, on one line.
        expanded: String,
    },
}

/// The argv with placeholders filled in from the episode, in one pass.
/// Err when a value would make an argument start with `-` (read as an
/// option) where the template's argument did not, unless an earlier
/// argument is `--`.
pub fn expand(
    template: &[String],
    ep: &Episode,
    rule: &str,
    hold_minutes: u64,
) -> Result<Vec<String>, NotifyError> {
    let values = [
        ("account", ep.account.clone()),
        ("rule", rule.to_string()),
        ("reason", ep.reason.clone()),
        ("counters", ep.counters.clone()),
        ("queue_id", ep.first_queue_id.clone()),
        ("since", iso_utc(ep.since)),
        ("until", iso_utc(ep.until)),
        ("hold_minutes", hold_minutes.to_string()),
    ];
    let mut out = Vec::with_capacity(template.len());
    let mut options_ended = false;
    for (i, arg) in template.iter().enumerate() {
        let expanded = fill(arg, &values);
        if i > 0 && !options_ended && expanded.starts_with('-') && !arg.starts_with('-') {
            return Err(NotifyError::ReadAsOption {
                index: i,
                template: arg.clone(),
                expanded: crate::sanitize::one_line(&expanded),
            });
        }
        options_ended |= i > 0 && arg == "--";
        out.push(expanded);
    }
    Ok(out)
}

/// `{name}` replaced by its value, once, left to right; text that names no
/// placeholder is kept as it is.
fn fill(arg: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (v, close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(&crate::sanitize::one_line(v));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A count of commands running now.
pub struct Running(AtomicUsize);

impl Running {
    pub const fn new() -> Running {
        Running(AtomicUsize::new(0))
    }

    pub fn now(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn take(&'static self, max: usize) -> Option<Slot> {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self))
    }
}

impl Default for Running {
    fn default() -> Self {
        Running::new()
    }
}

/// Frees a running slot when the command's thread ends.
struct Slot(&'static Running);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every notify command of the process (all engines, across reloads).
pub static RUNNING: Running = Running::new();

/// Start `argv` on a thread of its own, unless `max_running` commands run
/// already (then None, with a warning). The handle tells how it ended.
/// Failures are logged with the queue id, never raised into the scan.
pub fn spawn(
    argv: Vec<String>,
    timeout: Duration,
    queue_id: String,
    max_running: usize,
) -> Option<JoinHandle<NotifyOutcome>> {
    spawn_counted(argv, timeout, queue_id, max_running, &RUNNING)
}

/// [`spawn`], counted in `running`.
pub fn spawn_counted(
    argv: Vec<String>,
    timeout: Duration,
    queue_id: String,
    max_running: usize,
    running: &'static Running,
) -> Option<JoinHandle<NotifyOutcome>> {
    let Some(slot) = running.take(max_running) else {
        tracing::warn!(
            "{queue_id}: outbound: notify command {} not run: {max_running} already running (outbound.notify_max_running)",
            argv.first().map(String::as_str).unwrap_or("")
        );
        return None;
    };
    let program = argv.first().cloned().unwrap_or_default();
    let id = queue_id.clone();
    let spawned = std::thread::Builder::new()
        .name("notify".into())
        .spawn(move || {
            let _slot = slot;
            let outcome = run(&argv, timeout);
            match &outcome {
                NotifyOutcome::Exited(Some(0)) => {}
                NotifyOutcome::Exited(code) => tracing::warn!(
                    "{queue_id}: outbound: notify command {} exited with {code:?}",
                    argv[0]
                ),
                NotifyOutcome::TimedOut => tracing::warn!(
                    "{queue_id}: outbound: notify command {} killed after {} s",
                    argv[0],
                    timeout.as_secs()
                ),
                NotifyOutcome::CannotStart(e) => tracing::warn!(
                    "{queue_id}: outbound: notify command {} could not start: {e}",
                    argv.first().map(String::as_str).unwrap_or("")
                ),
            }
            outcome
        });
    match spawned {
        Ok(handle) => Some(handle),
        // Out of threads (TasksMax): the slot went with the closure.
        Err(e) => {
            tracing::warn!("{id}: outbound: notify command {program} not run: {e}");
            None
        }
    }
}

fn run(argv: &[String], timeout: Duration) -> NotifyOutcome {
    let Some((program, args)) = argv.split_first() else {
        return NotifyOutcome::CannotStart("empty command".into());
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return NotifyOutcome::CannotStart(e.to_string()),
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return NotifyOutcome::Exited(status.code()),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return NotifyOutcome::TimedOut;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return NotifyOutcome::CannotStart(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode() -> Episode {
        Episode {
            account: "alice@example.jp".into(),
            reason: "outbound.rate_exceeded: 31 messages in 1m (limit 30)".into(),
            counters: "1m: 31 msg".into(),
            since: 1_700_000_000,
            until: 1_700_003_600,
            first_queue_id: "4XyZ1".into(),
            last_queue_id: "4XyZ1".into(),
            messages: 1,
        }
    }

    #[test]
    fn command_gets_the_facts_as_separate_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("notified");
        // `cp` copies its first argument to the second: the file name is
        // built from the placeholders, so its existence proves the expansion.
        let src = dir.path().join("alice@example.jp 4XyZ1 60");
        std::fs::write(&src, b"x").unwrap();
        let template: Vec<String> = vec![
            "/bin/cp".into(),
            format!(
                "{}/{{account}} {{queue_id}} {{hold_minutes}}",
                dir.path().display()
            ),
            out.display().to_string(),
        ];
        let argv = expand(&template, &episode(), "outbound.rate_exceeded", 60).unwrap();
        assert_eq!(argv[1], src.display().to_string());
        let outcome = spawn(argv, Duration::from_secs(10), "Q".into(), 4)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(outcome, NotifyOutcome::Exited(Some(0)));
        assert!(out.exists());
    }

    #[test]
    fn slow_command_is_killed_and_missing_one_reported() {
        let argv = vec!["/bin/sleep".to_string(), "30".to_string()];
        let outcome = spawn(argv, Duration::from_millis(200), "Q".into(), 4)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(outcome, NotifyOutcome::TimedOut);
        let argv = vec!["/nonexistent/notify".to_string()];
        let outcome = spawn(argv, Duration::from_secs(1), "Q".into(), 4)
            .unwrap()
            .join()
            .unwrap();
        assert!(matches!(outcome, NotifyOutcome::CannotStart(_)));
    }

    #[test]
    fn a_value_cannot_bring_in_another_placeholder() {
        let mut ep = episode();
        ep.account = "{reason}{queue_id}".into();
        ep.reason = "line one\nline two {account}".into();
        let template: Vec<String> = ["/bin/true", "acct={account}", "{reason}", "{unknown} {"]
            .map(String::from)
            .to_vec();
        let argv = expand(&template, &ep, "outbound.rate_exceeded", 60).unwrap();
        assert_eq!(
            argv,
            [
                "/bin/true",
                "acct={reason}{queue_id}",
                "line one line two {account}",
                "{unknown} {"
            ]
        );
    }

    #[test]
    fn a_value_cannot_become_an_option() {
        let mut ep = episode();
        ep.account = "-oProxyCommand=touch /tmp/x".into();
        let plain: Vec<String> = ["/usr/bin/notify", "--account", "{account}"]
            .map(String::from)
            .to_vec();
        let err = expand(&plain, &ep, "r", 60).unwrap_err();
        assert_eq!(
            err.to_string(),
            "argument 2 (\"{account}\") would start with \"-\" and be read as an option: \"-oProxyCommand=touch /tmp/x\""
        );
        // Attached to its option, or after "--", the value is only a value.
        let attached: Vec<String> = ["/usr/bin/notify", "--account={account}"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            expand(&attached, &ep, "r", 60).unwrap()[1],
            "--account=-oProxyCommand=touch /tmp/x"
        );
        let after_dashes: Vec<String> = ["/usr/bin/notify", "--", "{account}"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            expand(&after_dashes, &ep, "r", 60).unwrap()[2],
            "-oProxyCommand=touch /tmp/x"
        );
    }

    #[test]
    fn no_more_than_max_running_at_once() {
        static COUNTED: Running = Running::new();
        let sleep = || vec!["/bin/sleep".to_string(), "30".to_string()];
        let started: Vec<_> = (0..5)
            .map(|_| {
                spawn_counted(
                    sleep(),
                    Duration::from_millis(1500),
                    "Q".into(),
                    2,
                    &COUNTED,
                )
            })
            .collect();
        assert_eq!(started.iter().filter(|h| h.is_some()).count(), 2);
        assert_eq!(COUNTED.now(), 2);
        for handle in started.into_iter().flatten() {
            assert_eq!(handle.join().unwrap(), NotifyOutcome::TimedOut);
        }
        // The slots are free again once the commands ended.
        assert_eq!(COUNTED.now(), 0);
        let again = spawn_counted(
            vec!["/bin/true".to_string()],
            Duration::from_secs(10),
            "Q".into(),
            2,
            &COUNTED,
        );
        assert_eq!(
            again.unwrap().join().unwrap(),
            NotifyOutcome::Exited(Some(0))
        );
    }
}

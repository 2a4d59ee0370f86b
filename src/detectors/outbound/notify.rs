//! The notify command: run once when a hold episode starts, with the
//! episode's facts as arguments (never message content), without a shell,
//! on its own thread so the scan does not wait, and killed after
//! `notify_timeout_secs`.

use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::holds::{utc, Episode};

/// How a notify run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOutcome {
    Exited(Option<i32>),
    TimedOut,
    CannotStart(String),
}

/// The argv with placeholders filled in from the episode.
pub fn expand(template: &[String], ep: &Episode, rule: &str, hold_minutes: u64) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            arg.replace("{account}", &ep.account)
                .replace("{rule}", rule)
                .replace("{reason}", &ep.reason)
                .replace("{counters}", &ep.counters)
                .replace("{queue_id}", &ep.first_queue_id)
                .replace("{since}", &utc(ep.since))
                .replace("{until}", &utc(ep.until))
                .replace("{hold_minutes}", &hold_minutes.to_string())
        })
        .collect()
}

/// Start `argv` on a thread of its own; the handle tells how it ended.
/// Failures are logged with the queue id, never raised into the scan.
pub fn spawn(argv: Vec<String>, timeout: Duration, queue_id: String) -> JoinHandle<NotifyOutcome> {
    std::thread::spawn(move || {
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
    })
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
        let argv = expand(&template, &episode(), "outbound.rate_exceeded", 60);
        assert_eq!(argv[1], src.display().to_string());
        let outcome = spawn(argv, Duration::from_secs(10), "Q".into())
            .join()
            .unwrap();
        assert_eq!(outcome, NotifyOutcome::Exited(Some(0)));
        assert!(out.exists());
    }

    #[test]
    fn slow_command_is_killed_and_missing_one_reported() {
        let argv = vec!["/bin/sleep".to_string(), "30".to_string()];
        let outcome = spawn(argv, Duration::from_millis(200), "Q".into())
            .join()
            .unwrap();
        assert_eq!(outcome, NotifyOutcome::TimedOut);
        let argv = vec!["/nonexistent/notify".to_string()];
        let outcome = spawn(argv, Duration::from_secs(1), "Q".into())
            .join()
            .unwrap();
        assert!(matches!(outcome, NotifyOutcome::CannotStart(_)));
    }
}

//! `malspam-milter outbound status [ACCOUNT]` and `outbound release ACCOUNT`:
//! see the accounts the outbound detector counts and holds, and end a hold.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;
use crate::detectors::outbound::counters::{self, account_from_key};
use crate::detectors::outbound::{describe_usage, holds};
use crate::store::{Store, StoreResult};

#[derive(Debug, Subcommand)]
pub enum OutboundCommand {
    /// Accounts with their window counters and holds (or one account).
    Status {
        /// Only this account (SASL login, or `ip:ADDR` for internal networks).
        account: Option<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// End an account's hold now and reset its window counters.
    Release {
        account: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

impl OutboundCommand {
    /// The `--config` slot, for the default config path.
    pub fn config_mut(&mut self) -> &mut Option<PathBuf> {
        match self {
            OutboundCommand::Status { config, .. } | OutboundCommand::Release { config, .. } => {
                config
            }
        }
    }
}

/// The state store the daemon uses, from `[store]`: status and release must
/// see the counters and holds the daemon wrote.
pub fn open_store(config: &Config) -> StoreResult<Arc<dyn Store>> {
    crate::store::open(&config.store)
}

/// Run an `outbound` subcommand; returns the exit code.
pub fn run(command: OutboundCommand) -> i32 {
    let (config_path, account) = match &command {
        OutboundCommand::Status { config, account } => (config, account.clone()),
        OutboundCommand::Release { config, account } => (config, Some(account.clone())),
    };
    let Some(config) = super::load_config(config_path.as_deref()) else {
        return 1;
    };
    let store = match open_store(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("malspam-milter: {e}");
            return 1;
        }
    };
    let now = crate::store::unix_now();
    let result = match command {
        OutboundCommand::Status { .. } => status(store.as_ref(), &config, account.as_deref(), now),
        OutboundCommand::Release { account, .. } => release(
            store.as_ref(),
            &account,
            &format!("`outbound release` ({})", super::invoking_user()),
        ),
    };
    match result {
        Ok(text) => {
            print!("{}", crate::sanitize::escape_lines(&text));
            0
        }
        Err(e) => {
            eprintln!("malspam-milter: {e}");
            1
        }
    }
}

/// Every account the store knows (counted, learned or held), sorted.
fn accounts(store: &dyn Store) -> StoreResult<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for prefix in ["ob:h:", "ob:k:", "ob:hold:"] {
        for key in store.keys_with_prefix(prefix)? {
            out.insert(account_from_key(&key[prefix.len()..]));
        }
    }
    Ok(out)
}

/// The status report: per account, the hold (if any) and every window's
/// usage against its limits.
pub fn status(
    store: &dyn Store,
    config: &Config,
    account: Option<&str>,
    now: u64,
) -> StoreResult<String> {
    let list: Vec<String> = match account {
        Some(a) => vec![a.trim().to_lowercase()],
        None => accounts(store)?.into_iter().collect(),
    };
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("no outbound accounts in the store\n");
    }
    for account in list {
        out.push_str(&format!("{account}\n"));
        match holds::get(store, &account)? {
            Some(ep) if ep.active(now) => out.push_str(&format!(
                "  HELD since {} until {} ({} min left), {} message(s), first queue id {}, last queue id {}\n  reason: {}\n",
                crate::calendar::iso_utc(ep.since),
                crate::calendar::iso_utc(ep.until),
                (ep.until - now).div_ceil(60),
                ep.messages,
                ep.first_queue_id,
                ep.last_queue_id,
                ep.reason
            )),
            Some(ep) => out.push_str(&format!(
                "  not held (last hold {} .. {}, first queue id {})\n",
                crate::calendar::iso_utc(ep.since),
                crate::calendar::iso_utc(ep.until),
                ep.first_queue_id
            )),
            None => out.push_str("  not held\n"),
        }
        let windows = config.outbound.windows_for(&account);
        let usage = windows
            .iter()
            .map(|w| counters::usage(store, &account, w, now))
            .collect::<StoreResult<Vec<_>>>()?;
        out.push_str(&format!("  {}\n", describe_usage(&windows, &usage)));
    }
    Ok(out)
}

/// End the hold; the message says what was released.
pub fn release(store: &dyn Store, account: &str, who: &str) -> StoreResult<String> {
    let account = account.trim().to_lowercase();
    Ok(match holds::release(store, &account, who)? {
        Some(ep) => format!(
            "released {account}: hold since {}, {} message(s), first queue id {}, last queue id {}; window counters reset\n",
            crate::calendar::iso_utc(ep.since),
            ep.messages,
            ep.first_queue_id,
            ep.last_queue_id
        ),
        None => format!("{account} was not held; window counters reset\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::outbound::OutboundConfig;
    use crate::store::MemoryStore;

    #[test]
    fn status_shows_counters_and_holds_and_release_clears_them() {
        let store = MemoryStore::new();
        let config = Config::default();
        let t = 1_700_006_400;
        let windows = config.outbound.windows_for("alice@example.jp");
        let day = std::time::Duration::from_secs(86400);
        for i in 0..3 {
            counters::record(
                &store,
                "alice@example.jp",
                &windows,
                &["b@x.example".into()],
                day,
                t + i,
            )
            .unwrap();
        }
        counters::record(
            &store,
            "ip:10.0.0.7",
            &windows,
            &["c@y.example".into()],
            day,
            t,
        )
        .unwrap();
        let cfg = OutboundConfig::default();
        holds::on_message(
            &store,
            &cfg,
            "alice@example.jp",
            "Q9",
            Some(("too many", "1m: 3 msg")),
            t + 2,
        )
        .unwrap();

        let text = status(&store, &config, None, t + 5).unwrap();
        assert_eq!(
            text,
            "alice@example.jp\n  HELD since 2023-11-15T00:00:02Z until 2023-11-15T01:00:02Z (60 min left), 1 message(s), first queue id Q9, last queue id Q9\n  reason: too many\n  1m: 3 msg, 3 rcpt, 1 domains, 1 new; 1h: 3 msg, 3 rcpt, 1 domains, 1 new; 24h: 3 msg, 3 rcpt, 1 domains, 1 new\n\
             ip:10.0.0.7\n  not held\n  1m: 1 msg, 1 rcpt, 1 domains, 1 new; 1h: 1 msg, 1 rcpt, 1 domains, 1 new; 24h: 1 msg, 1 rcpt, 1 domains, 1 new\n"
        );
        let one = status(&store, &config, Some("IP:10.0.0.7"), t + 5).unwrap();
        assert!(one.starts_with("ip:10.0.0.7\n  not held\n"), "{one}");

        let msg = release(&store, "alice@example.jp", "test").unwrap();
        assert!(msg.starts_with("released alice@example.jp: hold since 2023-11-15T00:00:02Z, 1 message(s), first queue id Q9"), "{msg}");
        let text = status(&store, &config, Some("alice@example.jp"), t + 5).unwrap();
        assert_eq!(
            text,
            "alice@example.jp\n  not held\n  1m: 0 msg, 0 rcpt, 0 domains, 0 new; 1h: 0 msg, 0 rcpt, 0 domains, 0 new; 24h: 0 msg, 0 rcpt, 0 domains, 0 new\n"
        );
        assert_eq!(
            release(&store, "nobody", "test").unwrap(),
            "nobody was not held; window counters reset\n"
        );
    }
}

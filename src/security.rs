//! Start-up checks that only warn: running as root, and a config file that
//! holds a secret (a Redis URL with a password) readable by group or world.
//! The daemon is meant to run as its own user (the systemd unit's `User=`);
//! refusing root outright would break setups (and tests) that drop no
//! privileges on purpose, so these are loud warnings, not errors.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::config::Config;
use crate::store::StoreBackend;

/// True when this process runs with effective uid 0 (`/proc/self` is owned
/// by the effective uid).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// True when a Redis URL carries a password (`redis://:pw@host`,
/// `redis://user:pw@host`).
pub fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').is_some_and(|(userinfo, _)| {
        userinfo
            .split_once(':')
            .is_some_and(|(_, pw)| !pw.is_empty())
    })
}

/// A warning when `config` was read from a file that holds a secret and
/// that group or others may read.
pub fn config_secret_warning(config: &Config) -> Option<String> {
    let path = config.source.as_deref()?;
    if config.store.backend != StoreBackend::Redis || !url_has_password(&config.store.url) {
        return None;
    }
    loose_permissions(path).map(|mode| {
        format!(
            "{} holds a Redis password (store.url) and is readable by group or others \
             (mode {mode:04o}): chmod 600 it, or move the URL to MALSPAM_REDIS_URL",
            path.display()
        )
    })
}

/// The file's mode when group or others may read it.
fn loose_permissions(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls() {
        assert!(url_has_password("redis://:s3cret@127.0.0.1:6379/0"));
        assert!(url_has_password("rediss://user:s3cret@redis.example/1"));
        assert!(!url_has_password("redis://127.0.0.1:6379/0"));
        assert!(!url_has_password("redis://user@127.0.0.1/0"));
        assert!(!url_has_password("not a url"));
    }

    fn config_file(mode: u32, url: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("malspam-milter.toml");
        std::fs::write(
            &path,
            format!("[store]\nbackend = \"redis\"\nurl = \"{url}\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let config = Config::load(Some(&path)).unwrap();
        (dir, config)
    }

    #[test]
    fn a_readable_config_with_a_redis_password_is_flagged() {
        let (_dir, config) = config_file(0o644, "redis://:s3cret@127.0.0.1:6379/0");
        let warning = config_secret_warning(&config).expect("warned");
        assert!(warning.contains("0644"), "{warning}");
        let (_dir, config) = config_file(0o600, "redis://:s3cret@127.0.0.1:6379/0");
        assert_eq!(config_secret_warning(&config), None);
        let (_dir, config) = config_file(0o644, "redis://127.0.0.1:6379/0");
        assert_eq!(config_secret_warning(&config), None);
    }
}

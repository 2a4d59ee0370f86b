//! Who may use the reviewers' page: users in a file (argon2id hashes),
//! signed session cookies, CSRF tokens and the login rate limit.
//!
//! The users file has one user per line, `name:role:domains:hash`:
//! `role` is `viewer` or `reviewer`; `domains` is `*` (every domain) or a
//! comma-separated list (the user sees mail to those domains and their
//! subdomains only); `hash` is an argon2id PHC string, or `-` for a user who
//! only logs in through the trusted reverse proxy. `#` starts a comment.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A line of the users file that does not parse; the text names the line.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    #[error("line {line}: expected name:role:domains:hash")]
    Fields { line: usize },
    #[error("line {line}: bad user name {name:?}")]
    BadName { line: usize, name: String },
    #[error("line {line}: role must be viewer or reviewer, not {role:?}")]
    BadRole { line: usize, role: String },
    #[error("line {line}: {source}")]
    Domains {
        line: usize,
        #[source]
        source: DomainsError,
    },
    #[error("line {line}: the hash must be an argon2id PHC string or -")]
    BadHash { line: usize },
    #[error("line {line}: user {name} given twice")]
    Duplicate { line: usize, name: String },
}

/// A user's domains are neither `*` nor a list of domain names.
#[derive(Debug, thiserror::Error)]
#[error("domains must be * or a list like a.example,b.example, not {given:?}")]
pub struct DomainsError {
    /// As written.
    pub given: String,
}

/// The users file could not be read, changed or written, or a password
/// not hashed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A line of the file does not parse.
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: UsersFileError,
    },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("argon2: {0}")]
    Hash(#[source] argon2::password_hash::Error),
    /// `web user del` of a user the file does not have.
    #[error("no user {name} in {}", path.display())]
    NoSuchUser { name: String, path: PathBuf },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// [`write_atomically`] failed; the old file, if any, is untouched.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Sees metadata and findings.
    Viewer,
    /// Also releases, deletes and reads the text parts.
    Reviewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "reviewer" => Some(Role::Reviewer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
        }
    }
}

/// One line of the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Empty: every domain.
    pub domains: Vec<String>,
    /// argon2id PHC string; None: proxy login only.
    pub hash: Option<String>,
}

impl User {
    /// May this user see mail to `address`?
    pub fn sees(&self, address: &str) -> bool {
        if self.domains.is_empty() {
            return true;
        }
        let Some((_, domain)) = address.rsplit_once('@') else {
            return false;
        };
        // By key: `xn--r8jz45g.jp` in the users file sees mail to `例え.jp`.
        self.domains
            .iter()
            .any(|d| crate::domains::within(domain, d))
    }

    pub fn all_domains(&self) -> bool {
        self.domains.is_empty()
    }

    fn line(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.name,
            self.role.as_str(),
            if self.domains.is_empty() {
                "*".to_string()
            } else {
                self.domains.join(",")
            },
            self.hash.as_deref().unwrap_or("-")
        )
    }
}

/// Names are letters, digits and `._@-`, up to 64 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !d.starts_with('.')
        && !d.contains("..")
}

/// Parse the users file; errors name the line.
pub fn parse_users(text: &str) -> Result<Vec<User>, UsersFileError> {
    let mut users: Vec<User> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let mut parts = line.splitn(4, ':');
        let (Some(name), Some(role), Some(domains), Some(hash)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(UsersFileError::Fields { line: n });
        };
        if !valid_name(name) {
            return Err(UsersFileError::BadName {
                line: n,
                name: name.to_string(),
            });
        }
        let role = Role::parse(role).ok_or_else(|| UsersFileError::BadRole {
            line: n,
            role: role.to_string(),
        })?;
        let domains =
            parse_domains(domains).map_err(|source| UsersFileError::Domains { line: n, source })?;
        let hash = match hash {
            "-" => None,
            h if h.starts_with("$argon2id$") => Some(h.to_string()),
            _ => return Err(UsersFileError::BadHash { line: n }),
        };
        if users.iter().any(|u| u.name == name) {
            return Err(UsersFileError::Duplicate {
                line: n,
                name: name.to_string(),
            });
        }
        users.push(User {
            name: name.to_string(),
            role,
            domains,
            hash,
        });
    }
    Ok(users)
}

/// `*` or `a.example,b.example`.
pub fn parse_domains(s: &str) -> Result<Vec<String>, DomainsError> {
    if s.trim() == "*" {
        return Ok(Vec::new());
    }
    let domains: Vec<String> = s
        .split(',')
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .collect();
    if domains.iter().any(|d| !valid_domain(d)) {
        return Err(DomainsError {
            given: s.to_string(),
        });
    }
    Ok(domains)
}

/// The users file, read again when it changes.
pub fn load_users(path: &Path) -> Result<Vec<User>, AuthError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_users(&text).map_err(|source| AuthError::Parse {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(AuthError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// An argon2id hash of `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(AuthError::Hash)
}

pub fn verify_password(user: &User, password: &str) -> bool {
    match &user.hash {
        Some(hash) => Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok(),
        None => false,
    }
}

/// Add or replace `user` in the users file at `path`, written safely (a new
/// file beside it, then renamed over it; mode 0640 for a new file).
pub fn save_user(path: &Path, user: User) -> Result<(), AuthError> {
    let mut users = load_users(path)?;
    users.retain(|u| u.name != user.name);
    users.push(user);
    write_users(path, &users)
}

/// Remove `name`; an error when there is no such user.
pub fn delete_user(path: &Path, name: &str) -> Result<(), AuthError> {
    let mut users = load_users(path)?;
    let before = users.len();
    users.retain(|u| u.name != name);
    if users.len() == before {
        return Err(AuthError::NoSuchUser {
            name: name.to_string(),
            path: path.to_path_buf(),
        });
    }
    write_users(path, &users)
}

fn write_users(path: &Path, users: &[User]) -> Result<(), AuthError> {
    let mut text = String::from(
        "# malspam-milter web users: name:role:domains:hash (see `malspam-milter web user`)\n",
    );
    for u in users {
        text.push_str(&u.line());
        text.push('\n');
    }
    Ok(write_atomically(path, text.as_bytes(), 0o640)?)
}

/// Write `data` to a temporary file in `path`'s directory, sync it, keep
/// the old file's mode (or `new_mode`), and rename it over `path`.
pub fn write_atomically(path: &Path, data: &[u8], new_mode: u32) -> Result<(), WriteError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(new_mode);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| WriteError {
        path: path.to_path_buf(),
        source,
    })
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator");
    b
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 4096 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Signs and checks session cookies and CSRF tokens with one secret.
pub struct Signer {
    key: [u8; 32],
}

/// A valid session cookie's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub expires: u64,
    /// Random, per login: CSRF tokens are derived from it.
    pub nonce: String,
}

impl Signer {
    pub fn new(key: [u8; 32]) -> Signer {
        Signer { key }
    }

    /// The HMAC of `purpose`, a NUL, then `data`: a value signed for one
    /// purpose is never valid for another.
    fn keyed(&self, purpose: &str, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data);
        mac
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> Vec<u8> {
        self.keyed(purpose, data).finalize().into_bytes().to_vec()
    }

    fn check(&self, purpose: &str, data: &[u8], tag: &[u8]) -> bool {
        self.keyed(purpose, data).verify_slice(tag).is_ok()
    }

    /// `hex(payload).hex(mac)`.
    pub fn sign(&self, purpose: &str, payload: &str) -> String {
        format!(
            "{}.{}",
            hex(payload.as_bytes()),
            hex(&self.mac(purpose, payload.as_bytes()))
        )
    }

    /// The payload of a value made by [`Self::sign`] for `purpose`.
    pub fn open(&self, purpose: &str, value: &str) -> Option<String> {
        let (p, t) = value.split_once('.')?;
        let payload = unhex(p)?;
        let tag = unhex(t)?;
        if !self.check(purpose, &payload, &tag) {
            return None;
        }
        String::from_utf8(payload).ok()
    }

    pub fn session_cookie(&self, user: &str, expires: u64) -> (String, Session) {
        let nonce = hex(&random_bytes::<16>());
        let value = self.sign("session", &format!("{user}\n{expires}\n{nonce}"));
        (
            value,
            Session {
                user: user.to_string(),
                expires,
                nonce,
            },
        )
    }

    pub fn session(&self, value: &str, now: u64) -> Option<Session> {
        let payload = self.open("session", value)?;
        let mut parts = payload.split('\n');
        let user = parts.next()?.to_string();
        let expires: u64 = parts.next()?.parse().ok()?;
        let nonce = parts.next()?.to_string();
        (expires > now).then_some(Session {
            user,
            expires,
            nonce,
        })
    }

    /// The CSRF token for forms of the session (or login form) `nonce`.
    pub fn csrf(&self, nonce: &str) -> String {
        hex(&self.mac("csrf", nonce.as_bytes()))
    }

    pub fn csrf_ok(&self, nonce: &str, token: &str) -> bool {
        unhex(token).is_some_and(|t| self.check("csrf", nonce.as_bytes(), &t))
    }
}

/// Failed logins per key (client address, user name) in a sliding window;
/// at most `max_keys` keys are remembered (the oldest go first).
pub struct RateLimit {
    max_failures: usize,
    window_secs: u64,
    max_keys: usize,
    failures: Mutex<HashMap<String, VecDeque<u64>>>,
}

impl RateLimit {
    pub fn new(max_failures: usize, window_secs: u64, max_keys: usize) -> RateLimit {
        RateLimit {
            max_failures,
            window_secs,
            max_keys: max_keys.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// True when `key` has failed too often lately.
    pub fn blocked(&self, key: &str, now: u64) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(key) {
            Some(times) => {
                while times.front().is_some_and(|t| t + self.window_secs <= now) {
                    times.pop_front();
                }
                times.len() >= self.max_failures
            }
            None => false,
        }
    }

    pub fn fail(&self, key: &str, now: u64) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(key) && map.len() >= self.max_keys {
            // Forget expired keys; if still full, the one failed least lately.
            map.retain(|_, t| t.back().is_some_and(|t| t + self.window_secs > now));
            if map.len() >= self.max_keys {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied().unwrap_or(0))
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        let times = map.entry(key.to_string()).or_default();
        times.push_back(now);
        while times.len() > self.max_failures {
            times.pop_front();
        }
    }

    pub fn succeed(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_round_trip_and_errors() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let text =
            format!("# comment\nalice:reviewer:*:{hash}\nbob:viewer:a.example, B.example.:-\n");
        let users = parse_users(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert!(verify_password(&users[0], "correct horse"));
        assert!(!verify_password(&users[0], "wrong"));
        assert!(!verify_password(&users[1], ""), "proxy-only user");
        assert_eq!(users[1].domains, ["a.example", "b.example"]);
        // A reviewer of an IDN sees its mail in either form, and only its.
        let idn = User {
            name: "r".into(),
            role: Role::Reviewer,
            domains: vec!["xn--r8jz45g.jp".into()],
            hash: None,
        };
        assert!(idn.sees("bob@例え.jp"));
        assert!(idn.sees("bob@mail.xn--r8jz45g.jp"));
        assert!(idn.sees("bob@Mail.例え。JP."));
        assert!(!idn.sees("bob@ex\u{0430}mple.jp"));
        assert!(!idn.sees("bob@xn--zz.xn--r8jz45g.jp"));
        assert!(users[1].sees("x@a.example"));
        assert!(users[1].sees("x@mail.B.example"));
        assert!(!users[1].sees("x@notb.example"));
        assert!(!users[1].sees("x@a.example.evil"));
        assert!(!users[1].sees("a.example"));
        assert!(users[0].sees("anyone@anywhere"));

        for (bad, why) in [
            ("alice:admin:*:-", "role must be"),
            ("al ice:viewer:*:-", "bad user name"),
            ("alice:viewer:*", "expected name:role"),
            ("alice:viewer:*:$2y$10$bcrypt", "argon2id"),
            ("alice:viewer:a..b:-", "domains must be"),
            ("alice:viewer:*:-\nalice:viewer:*:-", "given twice"),
        ] {
            let e = parse_users(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn save_and_delete_users() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let user = |name: &str| User {
            name: name.into(),
            role: Role::Viewer,
            domains: vec!["a.example".into()],
            hash: None,
        };
        save_user(&path, user("a")).unwrap();
        save_user(&path, user("b")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let mut again = user("a");
        again.role = Role::Reviewer;
        save_user(&path, again).unwrap();
        let users = load_users(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(
            users.iter().find(|u| u.name == "a").unwrap().role,
            Role::Reviewer
        );
        delete_user(&path, "a").unwrap();
        assert!(delete_user(&path, "a")
            .unwrap_err()
            .to_string()
            .contains("no user a"));
        assert_eq!(load_users(&path).unwrap().len(), 1);
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // A bad line: the file and the line named, the line's error kept
        // as the source.
        std::fs::write(&path, "a:viewer:*:-\nb:admin:*:-\n").unwrap();
        let e = load_users(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: line 2: role must be viewer or reviewer, not \"admin\"",
                path.display()
            )
        );
        let line = std::error::Error::source(&e).unwrap();
        assert!(line.is::<UsersFileError>(), "{line:?}");
    }

    #[test]
    fn signed_values() {
        let s = Signer::new([7; 32]);
        let (cookie, session) = s.session_cookie("alice", 100);
        assert_eq!(s.session(&cookie, 99), Some(session.clone()));
        assert_eq!(s.session(&cookie, 100), None, "expired");
        // Another key, a changed payload or tag: refused.
        assert_eq!(Signer::new([8; 32]).session(&cookie, 0), None);
        let (p, t) = cookie.split_once('.').unwrap();
        let forged = format!("{}.{t}", hex(b"admin\n999999999999\nx"));
        assert_eq!(s.session(&forged, 0), None);
        assert_eq!(s.session(&format!("{p}.00{t}"), 0), None);
        assert_eq!(s.session("garbage", 0), None);
        // A session cookie is no CSRF token and vice versa.
        assert_eq!(s.open("csrf", &cookie), None);
        let token = s.csrf(&session.nonce);
        assert!(s.csrf_ok(&session.nonce, &token));
        assert!(!s.csrf_ok("other", &token));
        assert!(!s.csrf_ok(&session.nonce, ""));
    }

    #[test]
    fn rate_limit_window_and_bound() {
        let r = RateLimit::new(3, 60, 2);
        for t in 0..3 {
            assert!(!r.blocked("ip", t));
            r.fail("ip", t);
        }
        assert!(r.blocked("ip", 10));
        assert!(!r.blocked("ip", 61), "the first failure left the window");
        r.succeed("ip");
        assert!(!r.blocked("ip", 11));
        // Never more than max_keys remembered.
        for k in ["a", "b", "c", "d"] {
            r.fail(k, 100);
        }
        assert!(r.failures.lock().unwrap().len() <= 2);
    }
}

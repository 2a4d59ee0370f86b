//! `malspam-milter web`: the quarantine reviewers' page. A separate process
//! from the milter (a bug here cannot hurt mail flow) serving HTTP with
//! axum: a list of held mail, each message's findings explained, and
//! release / delete / release-and-allowlist, every action audited.
//!
//! It reads and acts on Postfix's hold queue through the `quarantine`
//! module, like the CLI. Pages are server-rendered (maud escapes everything
//! taken from a message), with a strict Content-Security-Policy and no
//! JavaScript at all.

pub mod allowlist;
pub mod auth;
pub mod explain;
pub mod index;
mod pages;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::{
    ConnectInfo, FromRequest, FromRequestParts, Path as UrlPath, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};

use auth::{AuthError, RateLimit, Role, Session, Signer, User, WriteError};
use index::{HoldQueue, Index, Item};

use crate::quarantine::postfix::QuarantineError;
use crate::quarantine::release::ReleaseError;

/// `malspam-milter web` could not start or stopped serving; printed after
/// `malspam-milter: web: `.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The users file could not be read.
    #[error(transparent)]
    Users(#[from] AuthError),
    #[error("no users in {file}: create the first with `malspam-milter web user add NAME --role reviewer`")]
    NoUsers { file: String },
    #[error("{}: shorter than 32 bytes", path.display())]
    SecretTooShort { path: PathBuf },
    #[error("{}: {source}", path.display())]
    SecretRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A new session secret file could not be written.
    #[error(transparent)]
    SecretWrite(#[from] WriteError),
    #[error("[web] listen {listen:?}: {source}")]
    Listen {
        listen: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("tokio: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serve: {0}")]
    Serve(#[source] std::io::Error),
}

/// A reviewer's action on one held message failed; the text goes to the
/// audit log as `error: TEXT`.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error("no config file to write the allowlist to")]
    NoConfigFile,
    #[error(transparent)]
    Allowlist(#[from] allowlist::AllowlistError),
}

/// `[web]`: the reviewers' page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port to serve HTTP on.
    pub listen: String,
    /// Users: `name:role:domains:argon2id-hash` lines (`web user add`).
    pub users_file: String,
    /// Every action (who, when, what) is appended here as a JSON line.
    pub audit_log: String,
    /// A file holding the key that signs session cookies; made (mode 0600)
    /// when missing. Empty: a new key at each start (everyone logs in again).
    pub session_secret_file: String,
    /// Hours a login lasts.
    pub session_hours: u64,
    /// Always mark cookies `Secure` (behind TLS). Also done per request
    /// when a trusted proxy says `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
    /// Reverse proxies (CIDR) whose X-Forwarded-For, X-Forwarded-Proto and
    /// `proxy_user_header` are believed. Empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Header in which a trusted authenticating proxy names the logged-in
    /// user (e.g. "X-Remote-User"); the user must be in `users_file`.
    /// Empty: no proxy login.
    pub proxy_user_header: String,
    /// Failed logins per client address and per user name before login
    /// is refused for `login_window_secs`.
    pub login_max_failures: usize,
    pub login_window_secs: u64,
    /// Client addresses and user names remembered by the rate limit.
    pub login_max_tracked: usize,
    /// Held messages per list page.
    pub page_size: usize,
    /// Seconds between readings of the hold queue.
    pub refresh_secs: u64,
    /// Messages bigger than this are not opened for the message view
    /// (the list still shows them).
    pub max_message_bytes: u64,
    /// Characters of each text part shown to reviewers.
    pub max_text_chars: usize,
    /// Command (no shell) that makes the milter reload its config after
    /// "release and allowlist", e.g. ["/usr/bin/systemctl", "reload",
    /// "malspam-milter"]. Empty: the page says to reload by hand.
    pub reload_command: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:7358".into(),
            users_file: "/etc/malspam-milter/web-users".into(),
            audit_log: "/var/lib/malspam-milter/web-audit.log".into(),
            session_secret_file: String::new(),
            session_hours: 8,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            proxy_user_header: String::new(),
            login_max_failures: 5,
            login_window_secs: 300,
            login_max_tracked: 10_000,
            page_size: 50,
            refresh_secs: 10,
            max_message_bytes: 64 * 1024 * 1024,
            max_text_chars: 100_000,
            reload_command: Vec::new(),
        }
    }
}

impl WebConfig {
    /// Invalid values, as (key path, message), for `config check`.
    pub fn problems(&self) -> Vec<([&'static str; 2], String)> {
        let mut out = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            out.push((
                ["web", "listen"],
                format!(
                    "expected IP:port, e.g. \"127.0.0.1:7358\", got {:?}",
                    self.listen
                ),
            ));
        }
        for (key, value) in [
            ("session_hours", self.session_hours),
            ("login_max_failures", self.login_max_failures as u64),
            ("login_window_secs", self.login_window_secs),
            ("login_max_tracked", self.login_max_tracked as u64),
            ("page_size", self.page_size as u64),
            ("refresh_secs", self.refresh_secs),
        ] {
            if value == 0 {
                out.push((["web", key], "must be at least 1".into()));
            }
        }
        if self.page_size > 1000 {
            out.push((["web", "page_size"], "must be at most 1000".into()));
        }
        let h = &self.proxy_user_header;
        if !h.is_empty() && axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            out.push((
                ["web", "proxy_user_header"],
                format!("not a header name: {h:?}"),
            ));
        }
        out
    }
}

/// The interface language, from Accept-Language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    /// The first of ja / en in the browser's order of preference; English
    /// when neither is asked for.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        let Some(value) = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Lang::En;
        };
        let mut ranges: Vec<(f32, usize, &str)> = value
            .split(',')
            .take(32)
            .enumerate()
            .map(|(i, part)| {
                let mut it = part.split(';');
                let tag = it.next().unwrap_or("").trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (q, i, tag)
            })
            .collect();
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (q, _, tag) in ranges {
            if q <= 0.0 {
                continue;
            }
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            match primary.as_str() {
                "ja" => return Lang::Ja,
                "en" => return Lang::En,
                _ => {}
            }
        }
        Lang::En
    }

    pub fn pick(self, en: &'static str, ja: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Ja => ja,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }
}

/// Everything the handlers share.
pub struct AppState {
    pub config: Arc<crate::Config>,
    pub queue: Arc<dyn HoldQueue>,
    pub index: Arc<RwLock<Index>>,
    pub signer: Signer,
    pub limiter: RateLimit,
    /// Logged-out session nonces, until they would have expired.
    revoked: Mutex<Vec<(String, u64)>>,
    /// Clock; tests may pin it.
    pub now: fn() -> u64,
}

impl AppState {
    pub fn new(config: Arc<crate::Config>, queue: Arc<dyn HoldQueue>, key: [u8; 32]) -> AppState {
        let w = &config.web;
        AppState {
            limiter: RateLimit::new(
                w.login_max_failures,
                w.login_window_secs,
                w.login_max_tracked,
            ),
            config: config.clone(),
            queue,
            index: Arc::new(RwLock::new(Index::default())),
            signer: Signer::new(key),
            revoked: Mutex::new(Vec::new()),
            now: crate::store::unix_now,
        }
    }

    fn web(&self) -> &WebConfig {
        &self.config.web
    }

    /// Read the hold queue now (blocking).
    pub fn refresh(&self) {
        index::refresh(self.queue.as_ref(), &self.index);
    }

    fn users(&self) -> Vec<User> {
        match auth::load_users(Path::new(&self.web().users_file)) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("web: {e}");
                Vec::new()
            }
        }
    }

    fn user(&self, name: &str) -> Option<User> {
        self.users().into_iter().find(|u| u.name == name)
    }

    fn revoked(&self, nonce: &str) -> bool {
        let now = (self.now)();
        let mut r = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|(_, exp)| *exp > now);
        r.iter().any(|(n, _)| n == nonce)
    }

    fn audit(&self, record: serde_json::Value) {
        tracing::info!("web audit: {record}");
        let path = &self.web().audit_log;
        if path.is_empty() {
            return;
        }
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let line = format!("{record}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::error!("web: cannot write the audit log {path}: {e}");
        }
    }
}

/// Who is asking, as seen through trusted proxies.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    /// Behind TLS: cookies get `Secure`.
    pub secure: bool,
    /// The user a trusted authenticating proxy vouches for.
    pub proxy_user: Option<String>,
    pub lang: Lang,
}

/// The logged-in user.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: User,
    /// CSRF token for this session's forms.
    pub csrf: String,
    session: Option<Session>,
}

/// The router with every route; `state` shared.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/messages") }))
        .route("/static/style.css", get(style))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/messages", get(list))
        .route("/messages/{id}", get(show))
        .route("/messages/{id}/confirm", get(confirm))
        .route("/messages/{id}/action", post(act))
        .route("/bulk", post(bulk_confirm))
        .route("/bulk/action", post(bulk_act))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Every request: who the client is; every response: the security headers.
async fn guard(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let web = state.web();
    let trusted = web.trusted_proxies.iter().any(|n| n.contains(&peer));
    let headers = req.headers();
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let mut client = Client {
        ip: peer,
        secure: web.secure_cookies,
        proxy_user: None,
        lang: Lang::from_headers(headers),
    };
    if trusted {
        if let Some(ip) = header_str("x-forwarded-for")
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            client.ip = ip;
        }
        if header_str("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")) {
            client.secure = true;
        }
        if !web.proxy_user_header.is_empty() {
            client.proxy_user = header_str(&web.proxy_user_header).map(str::to_string);
        }
    }
    req.extensions_mut().insert(client);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        pages::CSS,
    )
        .into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(name: &str, value: &str, max_age: u64, client: &Client) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if client.secure { "; Secure" } else { "" }
    )
}

const SESSION: &str = "msm_session";
const LOGIN: &str = "msm_login";

/// The logged-in user, or None.
fn current(state: &AppState, headers: &HeaderMap, client: &Client) -> Option<Login> {
    if let Some(name) = &client.proxy_user {
        let user = state.user(name)?;
        let csrf = state.signer.csrf(&format!("proxy\n{name}"));
        return Some(Login {
            user,
            csrf,
            session: None,
        });
    }
    let session = state
        .signer
        .session(&cookie(headers, SESSION)?, (state.now)())?;
    if state.revoked(&session.nonce) {
        return None;
    }
    let user = state.user(&session.user)?;
    Some(Login {
        user,
        csrf: state.signer.csrf(&session.nonce),
        session: Some(session),
    })
}

fn csrf_ok(state: &AppState, login: &Login, token: &str) -> bool {
    match &login.session {
        Some(s) => state.signer.csrf_ok(&s.nonce, token),
        None => state
            .signer
            .csrf_ok(&format!("proxy\n{}", login.user.name), token),
    }
}

fn html(status: StatusCode, body: maud::Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into_string(),
    )
        .into_response()
}

fn error_page(
    client: &Client,
    login: Option<&Login>,
    status: StatusCode,
    message: &str,
) -> Response {
    html(status, pages::error(client.lang, login, status, message))
}

/// A POST form, parsed: repeated keys kept (the selection's `id`s).
#[derive(Debug, Default)]
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .take(10_000)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

async fn login_form(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
) -> Response {
    if current(&state, &headers, &client).is_some() {
        return Redirect::to("/messages").into_response();
    }
    login_page(&state, &client, StatusCode::OK, None)
}

fn login_page(
    state: &AppState,
    client: &Client,
    status: StatusCode,
    message: Option<&str>,
) -> Response {
    let nonce = auth::hex(&auth::random_bytes::<16>());
    let csrf = state.signer.csrf(&format!("login\n{nonce}"));
    let cookie_value = state.signer.sign("login", &nonce);
    let mut resp = html(status, pages::login(client.lang, &csrf, message));
    if let Ok(v) = HeaderValue::from_str(&set_cookie(LOGIN, &cookie_value, 3600, client)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn login(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = Form::parse(&body);
    let lang = client.lang;
    let nonce = cookie(&headers, LOGIN).and_then(|c| state.signer.open("login", &c));
    let csrf_ok = nonce.as_ref().is_some_and(|n| {
        state
            .signer
            .csrf_ok(&format!("login\n{n}"), form.get("csrf"))
    });
    if !csrf_ok {
        return login_page(
            &state,
            &client,
            StatusCode::FORBIDDEN,
            Some(lang.pick(
                "The form expired. Please log in again.",
                "フォームの有効期限が切れました。もう一度ログインしてください。",
            )),
        );
    }
    let name = form.get("user").trim().to_string();
    let password = form.get("password").to_string();
    let now = (state.now)();
    let ip_key = format!("ip {}", client.ip);
    let user_key = format!("user {name}");
    // A refused login: audited, and the form again with why.
    let refuse = |result: &str, status: StatusCode, message: &str| {
        state.audit(serde_json::json!({
            "time": now, "action": "login", "user": name, "client": client.ip.to_string(),
            "result": result
        }));
        login_page(&state, &client, status, Some(message))
    };
    if state.limiter.blocked(&ip_key, now) || state.limiter.blocked(&user_key, now) {
        return refuse(
            "refused: too many failures",
            StatusCode::TOO_MANY_REQUESTS,
            lang.pick(
                "Too many failed logins. Wait a few minutes.",
                "ログインの失敗が多すぎます。数分待ってください。",
            ),
        );
    }
    let user = state.user(&name);
    // Verify off the reactor: argon2id is deliberately slow. Unknown users
    // are checked against a dummy hash so that timing tells nothing.
    let ok = tokio::task::spawn_blocking(move || match user {
        Some(u) => auth::verify_password(&u, &password).then_some(u),
        None => {
            let dummy = User {
                name: String::new(),
                role: Role::Viewer,
                domains: Vec::new(),
                hash: Some(dummy_hash().to_string()),
            };
            let _ = auth::verify_password(&dummy, &password);
            None
        }
    })
    .await
    .ok()
    .flatten();
    let Some(user) = ok else {
        state.limiter.fail(&ip_key, now);
        state.limiter.fail(&user_key, now);
        return refuse(
            "failed",
            StatusCode::UNAUTHORIZED,
            lang.pick(
                "Wrong user name or password.",
                "ユーザー名またはパスワードが違います。",
            ),
        );
    };
    state.limiter.succeed(&user_key);
    let hours = state.web().session_hours;
    let (value, _) = state.signer.session_cookie(&user.name, now + hours * 3600);
    state.audit(serde_json::json!({
        "time": now, "action": "login", "user": user.name, "client": client.ip.to_string(),
        "result": "ok"
    }));
    let mut resp = Redirect::to("/messages").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(SESSION, &value, hours * 3600, &client)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&set_cookie(LOGIN, "", 0, &client)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// An argon2id hash of a random password nobody knows, made once.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        auth::hash_password(&auth::hex(&auth::random_bytes::<16>())).unwrap_or_default()
    })
}

async fn logout(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = Form::parse(&body);
    let Some(login) = current(&state, &headers, &client) else {
        return Redirect::to("/login").into_response();
    };
    if !csrf_ok(&state, &login, form.get("csrf")) {
        return error_page(&client, Some(&login), StatusCode::FORBIDDEN, "CSRF");
    }
    if let Some(s) = &login.session {
        state
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((s.nonce.clone(), s.expires));
    }
    state.audit(serde_json::json!({
        "time": (state.now)(), "action": "logout", "user": login.user.name,
        "client": client.ip.to_string()
    }));
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(SESSION, "", 0, &client)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The list's filters, from the query string.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Filters {
    pub verdict: String,
    pub rule: String,
    pub domain: String,
    /// "1h", "1d", "7d" (newer than), "old" (older than 7 days), or "".
    pub age: String,
    /// Message-ID or queue id (or part of either).
    pub q: String,
    pub page: usize,
    /// A notice after an action: "released", "deleted", ...
    pub done: String,
}

impl Filters {
    fn matches(&self, item: &Item, now: u64) -> bool {
        if !self.verdict.is_empty() && !item.verdict().eq_ignore_ascii_case(&self.verdict) {
            return false;
        }
        if !self.rule.is_empty() && !item.findings.iter().any(|f| f.name() == self.rule) {
            return false;
        }
        if !self.domain.is_empty() && !crate::domains::within(&item.sender_domain, &self.domain) {
            return false;
        }
        let age = now.saturating_sub(item.held.arrival_time);
        let ok_age = match self.age.as_str() {
            "1h" => age < 3600,
            "1d" => age < 86400,
            "7d" => age < 7 * 86400,
            "old" => age >= 7 * 86400,
            _ => true,
        };
        if !ok_age {
            return false;
        }
        let q = self.q.trim().trim_matches(['<', '>']);
        if !q.is_empty() {
            let ql = q.to_ascii_lowercase();
            if !(item.held.queue_id.eq_ignore_ascii_case(q)
                || item.message_id.to_ascii_lowercase().contains(&ql))
            {
                return false;
            }
        }
        true
    }
}

/// May `user` see this message? (Any recipient in the user's domains.)
pub fn visible(user: &User, item: &Item) -> bool {
    user.all_domains() || item.held.recipients.iter().any(|r| user.sees(r))
}

/// May `user` act on it? (Every recipient in the user's domains: a
/// customer never releases mail that also goes to someone else's domain.)
pub fn actionable(user: &User, item: &Item) -> bool {
    user.role == Role::Reviewer
        && (user.all_domains() || item.held.recipients.iter().all(|r| user.sees(r)))
}

async fn list(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Response {
    let Some(login) = current(&state, &headers, &client) else {
        return Redirect::to("/login").into_response();
    };
    let now = (state.now)();
    let idx = state.index.read().unwrap_or_else(|e| e.into_inner());
    let visible_items: Vec<&Arc<Item>> = idx
        .items
        .iter()
        .filter(|i| visible(&login.user, i))
        .collect();
    let mut rules: Vec<String> = Vec::new();
    for i in &visible_items {
        for f in &i.findings {
            let n = f.name();
            if !rules.contains(&n) && rules.len() < 200 {
                rules.push(n);
            }
        }
    }
    rules.sort();
    let matching: Vec<&Arc<Item>> = visible_items
        .into_iter()
        .filter(|i| filters.matches(i, now))
        .collect();
    let size = state.web().page_size.max(1);
    let pages = matching.len().div_ceil(size).max(1);
    let page = filters.page.clamp(1, pages);
    let shown: Vec<&Item> = matching
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|i| i.as_ref())
        .collect();
    let body = pages::list(&pages::ListPage {
        lang: client.lang,
        login: &login,
        items: &shown,
        total: matching.len(),
        page,
        pages,
        filters: &filters,
        rules: &rules,
        now,
        loaded: idx.loaded,
        error: idx.error.as_deref(),
        top: state.config.quarantine.list_findings,
    });
    html(StatusCode::OK, body)
}

/// The item, if it exists and `login` may see it.
fn find(state: &AppState, login: &Login, id: &str) -> Option<Arc<Item>> {
    if !crate::quarantine::postfix::valid_queue_id(id) {
        return None;
    }
    let item = state
        .index
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)?;
    visible(&login.user, &item).then_some(item)
}

/// A held message the logged-in user may see, named by the URL's `{id}`,
/// for a page about it: without a login, the login page; a message not
/// held, or not the user's, is "not found".
struct Viewed {
    client: Client,
    login: Login,
    item: Arc<Item>,
}

impl FromRequestParts<Arc<AppState>> for Viewed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Viewed, Response> {
        let Extension(client) = Extension::<Client>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let UrlPath(id) = UrlPath::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(login) = current(state, &parts.headers, &client) else {
            return Err(Redirect::to("/login").into_response());
        };
        let Some(item) = find(state, &login, &id) else {
            return Err(not_found(&client, &login));
        };
        Ok(Viewed {
            client,
            login,
            item,
        })
    }
}

async fn show(
    State(state): State<Arc<AppState>>,
    Viewed {
        client,
        login,
        item,
    }: Viewed,
) -> Response {
    let id = &item.held.queue_id;
    let too_big = item.held.message_size > state.web().max_message_bytes;
    let view = if too_big {
        None
    } else {
        let queue = state.queue.clone();
        let limits = state.config.limits.clone();
        let qid = id.clone();
        let built = tokio::task::spawn_blocking(move || {
            let raw = queue.message(&qid)?;
            let deadline =
                std::time::Instant::now() + Duration::from_secs(limits.scan_timeout_secs);
            Ok::<_, QuarantineError>(crate::view::MessageView::build(
                crate::Envelope::default(),
                &raw,
                &limits,
                deadline,
            ))
        })
        .await;
        match built {
            Ok(Ok(view)) => Some(view),
            Ok(Err(e)) => {
                tracing::warn!("{id}: {e}");
                None
            }
            Err(e) => {
                tracing::warn!("{id}: view: {e}");
                None
            }
        }
    };
    html(
        StatusCode::OK,
        pages::message(&pages::MessagePage {
            lang: client.lang,
            login: &login,
            item: &item,
            view: view.as_ref(),
            too_big,
            now: (state.now)(),
            max_text_chars: state.web().max_text_chars,
            can_act: actionable(&login.user, &item),
        }),
    )
}

fn not_found(client: &Client, login: &Login) -> Response {
    error_page(
        client,
        Some(login),
        StatusCode::NOT_FOUND,
        client.lang.pick(
            "No such held message (released, deleted, or not one of yours).",
            "該当する保留メッセージはありません（解放・削除済み、または権限外）。",
        ),
    )
}

/// The actions a reviewer can take on held mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Release,
    Delete,
    ReleaseAllowlist,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "release" => Some(Action::Release),
            "delete" => Some(Action::Delete),
            "release_allowlist" => Some(Action::ReleaseAllowlist),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Release => "release",
            Action::Delete => "delete",
            Action::ReleaseAllowlist => "release_allowlist",
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConfirmQuery {
    action: String,
}

async fn confirm(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ConfirmQuery>,
    Viewed {
        client,
        login,
        item,
    }: Viewed,
) -> Response {
    let Some(action) = Action::parse(&q.action) else {
        return error_page(&client, Some(&login), StatusCode::BAD_REQUEST, "action");
    };
    if let Err(resp) = may_act(&state, &client, &login, &item, action) {
        return *resp;
    }
    html(
        StatusCode::OK,
        pages::confirm(client.lang, &login, &[item.as_ref()], action, (state.now)()),
    )
}

/// Role, scope and (for the allowlist, which applies to every domain)
/// all-domain checks.
fn may_act(
    state: &AppState,
    client: &Client,
    login: &Login,
    item: &Item,
    action: Action,
) -> Result<(), Box<Response>> {
    let lang = client.lang;
    let refuse =
        |status, message: &str| Err(Box::new(error_page(client, Some(login), status, message)));
    if login.user.role != Role::Reviewer {
        return refuse(
            StatusCode::FORBIDDEN,
            lang.pick(
                "Viewers cannot release or delete mail.",
                "閲覧者はメールの解放・削除ができません。",
            ),
        );
    }
    if !actionable(&login.user, item) {
        return refuse(
            StatusCode::FORBIDDEN,
            lang.pick(
                "This message also goes to domains outside yours; ask an administrator.",
                "このメッセージは権限外のドメインにも宛てられています。管理者に依頼してください。",
            ),
        );
    }
    if action == Action::ReleaseAllowlist {
        if !login.user.all_domains() {
            return refuse(
                StatusCode::FORBIDDEN,
                lang.pick(
                    "The allowlist applies to every domain: only a reviewer of all domains may change it.",
                    "許可リストは全ドメインに効くため、全ドメインの担当者だけが変更できます。",
                ),
            );
        }
        if state.config.source.is_none() {
            return refuse(
                StatusCode::CONFLICT,
                "no --config file to write the allowlist to",
            );
        }
    }
    Ok(())
}

/// An action form (POST) from a logged-in user: the login, the CSRF
/// token and the action checked, in that order. A request failing a check
/// is answered with its error page.
struct Posted {
    client: Client,
    login: Login,
    action: Action,
    form: Form,
}

impl FromRequest<Arc<AppState>> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Posted, Response> {
        let (mut parts, body) = req.into_parts();
        let Extension(client) = Extension::<Client>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let body = axum::body::Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Form::parse(&body);
        let Some(login) = current(state, &headers, &client) else {
            return Err(error_page(
                &client,
                None,
                StatusCode::FORBIDDEN,
                "login required",
            ));
        };
        if !csrf_ok(state, &login, form.get("csrf")) {
            return Err(error_page(
                &client,
                Some(&login),
                StatusCode::FORBIDDEN,
                "CSRF token missing or wrong",
            ));
        }
        let Some(action) = Action::parse(form.get("action")) else {
            return Err(error_page(
                &client,
                Some(&login),
                StatusCode::BAD_REQUEST,
                "action",
            ));
        };
        Ok(Posted {
            client,
            login,
            action,
            form,
        })
    }
}

async fn act(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Posted {
        client,
        login,
        action,
        ..
    }: Posted,
) -> Response {
    let Some(item) = find(&state, &login, &id) else {
        return not_found(&client, &login);
    };
    if let Err(resp) = may_act(&state, &client, &login, &item, action) {
        return *resp;
    }
    let results = perform(state.clone(), &login, &client, vec![item], action).await;
    done_redirect(action, &results)
}

/// What both steps of a bulk action check first: a [`Posted`] release or
/// delete, the selected messages the user may see, and that the user may
/// act on every one of them.
struct Bulk {
    client: Client,
    login: Login,
    action: Action,
    items: Vec<Arc<Item>>,
}

impl FromRequest<Arc<AppState>> for Bulk {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Bulk, Response> {
        let Posted {
            client,
            login,
            action,
            form,
        } = Posted::from_request(req, state).await?;
        if !matches!(action, Action::Release | Action::Delete) {
            return Err(error_page(
                &client,
                Some(&login),
                StatusCode::BAD_REQUEST,
                "action",
            ));
        }
        let items: Vec<Arc<Item>> = form
            .all("id")
            .into_iter()
            .filter_map(|id| find(state, &login, id))
            .collect();
        for item in &items {
            may_act(state, &client, &login, item, action).map_err(|resp| *resp)?;
        }
        Ok(Bulk {
            client,
            login,
            action,
            items,
        })
    }
}

async fn bulk_confirm(State(state): State<Arc<AppState>>, bulk: Bulk) -> Response {
    if bulk.items.is_empty() {
        return Redirect::to("/messages").into_response();
    }
    let refs: Vec<&Item> = bulk.items.iter().map(|i| i.as_ref()).collect();
    html(
        StatusCode::OK,
        pages::confirm(
            bulk.client.lang,
            &bulk.login,
            &refs,
            bulk.action,
            (state.now)(),
        ),
    )
}

async fn bulk_act(State(state): State<Arc<AppState>>, bulk: Bulk) -> Response {
    let results = perform(
        state.clone(),
        &bulk.login,
        &bulk.client,
        bulk.items,
        bulk.action,
    )
    .await;
    done_redirect(bulk.action, &results)
}

fn done_redirect(action: Action, results: &[(String, Result<String, ActionError>)]) -> Response {
    let ok = results.iter().filter(|r| r.1.is_ok()).count();
    let failed = results.len() - ok;
    Redirect::to(&format!(
        "/messages?done={}&ok={ok}&failed={failed}",
        action.as_str()
    ))
    .into_response()
}

/// Do `action` on each item (off the reactor), audit each, update the index.
async fn perform(
    state: Arc<AppState>,
    login: &Login,
    client: &Client,
    items: Vec<Arc<Item>>,
    action: Action,
) -> Vec<(String, Result<String, ActionError>)> {
    let reviewer = format!("{} (web)", login.user.name);
    let st = state.clone();
    let results = tokio::task::spawn_blocking(move || {
        items
            .iter()
            .map(|item| {
                let id = item.held.queue_id.clone();
                let r = act_one(&st, item, action, &reviewer);
                (id, item.clone(), r)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let now = (state.now)();
    let mut out = Vec::new();
    for (id, item, result) in results {
        if result.is_ok() {
            state
                .index
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
        state.audit(serde_json::json!({
            "time": now,
            "action": action.as_str(),
            "user": login.user.name,
            "client": client.ip.to_string(),
            "queue_id": id,
            "sender": item.held.sender,
            "recipients": item.held.recipients,
            "subject": item.held.subject,
            "message_id": item.message_id,
            "verdict": item.verdict(),
            "score": item.held.verdict.as_ref().map(|v| v.score.clone()),
            "result": match &result { Ok(r) => r.clone(), Err(e) => format!("error: {e}") },
        }));
        out.push((id, result));
    }
    out
}

fn act_one(
    state: &AppState,
    item: &Item,
    action: Action,
    reviewer: &str,
) -> Result<String, ActionError> {
    let entry = crate::quarantine::postfix::QueueEntry {
        queue_name: crate::quarantine::postfix::HOLD.into(),
        queue_id: item.held.queue_id.clone(),
        arrival_time: item.held.arrival_time,
        message_size: item.held.message_size,
        sender: item.held.sender.clone(),
        recipients: item
            .held
            .recipients
            .iter()
            .map(|a| crate::quarantine::postfix::QueueRecipient {
                address: a.clone(),
                delay_reason: None,
            })
            .collect(),
    };
    let now = (state.now)();
    match action {
        Action::Delete => {
            state.queue.delete(&entry.queue_id)?;
            Ok("deleted".into())
        }
        Action::Release => {
            let released = state.queue.release(&entry, &item.held, reviewer, now)?;
            Ok(released.describe().to_string())
        }
        Action::ReleaseAllowlist => {
            let path = state
                .config
                .source
                .clone()
                .ok_or(ActionError::NoConfigFile)?;
            let added = allowlist::add_sender(&path, &item.held.sender)?;
            let reload = if added {
                match allowlist::reload(&state.web().reload_command) {
                    Ok(()) => "; milter reloaded".to_string(),
                    Err(e) => format!("; {e}"),
                }
            } else {
                "; already allowlisted".to_string()
            };
            let released = state.queue.release(&entry, &item.held, reviewer, now)?;
            Ok(format!(
                "{}; {} added to [allowlist] senders{reload}",
                released.describe(),
                item.held.sender
            ))
        }
    }
}

/// The session key: from `session_secret_file` (made when missing), or new.
pub fn session_key(web: &WebConfig) -> Result<[u8; 32], WebError> {
    if web.session_secret_file.is_empty() {
        return Ok(auth::random_bytes::<32>());
    }
    let path = PathBuf::from(&web.session_secret_file);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= 32 => {
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes[..32]);
            Ok(key)
        }
        Ok(_) => Err(WebError::SecretTooShort { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = auth::random_bytes::<32>();
            auth::write_atomically(&path, &key, 0o600)?;
            Ok(key)
        }
        Err(source) => Err(WebError::SecretRead { path, source }),
    }
}

/// `malspam-milter web`: serve until SIGTERM / SIGINT.
pub fn serve(config: crate::Config) -> Result<(), WebError> {
    let config = Arc::new(config);
    let web = config.web.clone();
    let users = auth::load_users(Path::new(&web.users_file))?;
    if users.is_empty() {
        return Err(WebError::NoUsers {
            file: web.users_file.clone(),
        });
    }
    let key = session_key(&web)?;
    let addr: SocketAddr = web.listen.parse().map_err(|source| WebError::Listen {
        listen: web.listen.clone(),
        source,
    })?;
    let queue: Arc<dyn HoldQueue> = Arc::new(index::PostfixQueue {
        config: config.clone(),
    });
    let state = Arc::new(AppState::new(config.clone(), queue, key));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(WebError::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| WebError::Bind { addr, source })?;
        tracing::info!("web: serving http://{addr}/ ({} user(s))", users.len());
        let refresher = state.clone();
        tokio::spawn(async move {
            loop {
                let s = refresher.clone();
                let _ = tokio::task::spawn_blocking(move || s.refresh()).await;
                tokio::time::sleep(Duration::from_secs(refresher.web().refresh_secs.max(1))).await;
            }
        });
        axum::serve(
            listener,
            app(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("web: shutting down");
        })
        .await
        .map_err(WebError::Serve)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_settings_are_checked() {
        let text =
            "[web]\nlisten = \"localhost\"\npage_size = 0\nproxy_user_header = \"bad header\"\n";
        let errors = crate::Config::parse(text, "t.toml")
            .unwrap_err()
            .to_string();
        for want in [
            "t.toml:2: web.listen: expected IP:port",
            "t.toml:3: web.page_size: must be at least 1",
            "t.toml:4: web.proxy_user_header: not a header name",
        ] {
            assert!(errors.contains(want), "{want} in {errors}");
        }
    }

    #[test]
    fn languages() {
        let lang = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_LANGUAGE, v.parse().unwrap());
            Lang::from_headers(&h)
        };
        assert_eq!(lang("ja"), Lang::Ja);
        assert_eq!(lang("ja-JP,ja;q=0.9,en;q=0.8"), Lang::Ja);
        assert_eq!(lang("en-US,ja;q=0.5"), Lang::En);
        assert_eq!(lang("fr,ja;q=0.3,en;q=0.2"), Lang::Ja);
        assert_eq!(lang("ja;q=0,en"), Lang::En);
        assert_eq!(lang("de"), Lang::En);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::En);
    }
}

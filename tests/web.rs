//! The reviewers' web page, route by route, through axum's router (no
//! socket): login, sessions, CSRF, the rate limit, roles, per-domain
//! scoping, the list's filters and paging, the message view, the actions
//! and their audit log, and a hostile message that must render inert.
//! The hold queue is a recorded one (the Postfix fixtures plus messages
//! made here); tests/web_browser.rs drives a real browser against a real
//! Postfix.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use malspam_milter::quarantine::postfix::{QuarantineError, QueueEntry, QueueRecipient};
use malspam_milter::quarantine::release::{ReleaseError, Released};
use malspam_milter::quarantine::HeldMessage;
use malspam_milter::web::auth::{self, Role, User};
use malspam_milter::web::index::HoldQueue;
use malspam_milter::web::{app, AppState};
use tower::ServiceExt;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/postfix");
const NOW: u64 = 1795308472 + 3600;
const PASSWORD: &str = "correct horse battery";

/// A hold queue in memory; records what was done to it.
#[derive(Default)]
struct FakeQueue {
    held: Mutex<Vec<(QueueEntry, Vec<u8>)>>,
    done: Mutex<Vec<String>>,
}

impl FakeQueue {
    fn add(&self, id: &str, arrival: u64, sender: &str, rcpts: &[&str], message: Vec<u8>) {
        self.held.lock().unwrap().push((
            QueueEntry {
                queue_name: "hold".into(),
                queue_id: id.into(),
                arrival_time: arrival,
                message_size: message.len() as u64,
                sender: sender.into(),
                recipients: rcpts
                    .iter()
                    .map(|r| QueueRecipient {
                        address: r.to_string(),
                        delay_reason: None,
                    })
                    .collect(),
            },
            message,
        ));
    }

    fn take(&self, id: &str) -> Result<(), QuarantineError> {
        let mut held = self.held.lock().unwrap();
        let before = held.len();
        held.retain(|(e, _)| e.queue_id != id);
        if held.len() == before {
            return Err(QuarantineError::NotHeld { id: id.into() });
        }
        Ok(())
    }

    fn done(&self) -> Vec<String> {
        self.done.lock().unwrap().clone()
    }
}

impl HoldQueue for FakeQueue {
    fn held(&self) -> Result<Vec<QueueEntry>, QuarantineError> {
        Ok(self
            .held
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect())
    }
    fn headers(&self, id: &str) -> Result<Vec<u8>, QuarantineError> {
        let m = self.message(id)?;
        let end = m
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(m.len(), |i| i + 1);
        Ok(m[..end].to_vec())
    }
    fn message(&self, id: &str) -> Result<Vec<u8>, QuarantineError> {
        self.held
            .lock()
            .unwrap()
            .iter()
            .find(|(e, _)| e.queue_id == id)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| QuarantineError::NotHeld { id: id.into() })
    }
    fn release(
        &self,
        entry: &QueueEntry,
        _held: &HeldMessage,
        reviewer: &str,
        _now: u64,
    ) -> Result<Released, ReleaseError> {
        self.take(&entry.queue_id)?;
        self.done
            .lock()
            .unwrap()
            .push(format!("release {} by {reviewer}", entry.queue_id));
        Ok(Released::InPlace)
    }
    fn delete(&self, id: &str) -> Result<(), QuarantineError> {
        self.take(id)?;
        self.done.lock().unwrap().push(format!("delete {id}"));
        Ok(())
    }
}

fn simple(subject: &str, to: &str, verdict: &str, findings: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Someone <s@sender.example>\nTo: <{to}>\nSubject: {subject}\nMessage-ID: <{}@sender.example>\n\
         X-Malspam-Verdict: {verdict}\nX-Malspam-Score: 12\nX-Malspam-Findings: {findings}\n\
         Content-Type: text/plain; charset=utf-8\n\n{body}\n",
        subject.len()
    )
    .into_bytes()
}

struct World {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    queue: Arc<FakeQueue>,
    state: Arc<AppState>,
}

fn world() -> World {
    world_with(|_| {})
}

fn world_with(tune: impl FnOnce(&mut malspam_milter::Config)) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let config_path = dir.join("milter.toml");
    std::fs::write(&config_path, "[allowlist]\nsenders = []\n").unwrap();
    let users = dir.join("users");
    let hash = auth::hash_password(PASSWORD).unwrap();
    for (name, role, domains) in [
        ("root", Role::Reviewer, vec![]),
        ("viewer", Role::Viewer, vec![]),
        ("alice", Role::Reviewer, vec!["a.example".to_string()]),
    ] {
        auth::save_user(
            &users,
            User {
                name: name.into(),
                role,
                domains,
                hash: Some(hash.clone()),
            },
        )
        .unwrap();
    }
    auth::save_user(
        &users,
        User {
            name: "proxied".into(),
            role: Role::Reviewer,
            domains: vec!["b.example".into()],
            hash: None,
        },
    )
    .unwrap();
    let mut config = malspam_milter::Config::load(Some(&config_path)).unwrap();
    config.web.users_file = users.display().to_string();
    config.web.audit_log = dir.join("audit.log").display().to_string();
    config.web.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    config.web.proxy_user_header = "X-Remote-User".into();
    tune(&mut config);

    let queue = Arc::new(FakeQueue::default());
    queue.add(
        "687579D8095",
        1795308472,
        "info@kansai-unrelated.example",
        &["yuki@customer.example"],
        std::fs::read(format!("{FIXTURES}/postcat-bh.txt")).unwrap(),
    );
    queue.add(
        "A0001",
        NOW - 60,
        "s@sender.example",
        &["ann@a.example"],
        simple(
            "for A",
            "ann@a.example",
            "quarantine",
            "office_macro.suspicious (+6): x.doc: VBA Document_Open (A), Shell (X)",
            "the text of A",
        ),
    );
    queue.add(
        "B0001",
        NOW - 120,
        "s@other.example",
        &["bob@b.example"],
        simple(
            "for B",
            "bob@b.example",
            "quarantine",
            "links.download (+5): http://x.example/a.doc",
            "the text of B",
        ),
    );
    queue.add(
        "M0001",
        NOW - 180,
        "s@sender.example",
        &["ann@a.example", "bob@b.example"],
        simple(
            "for A and B",
            "ann@a.example",
            "quarantine",
            "display_name.embedded_address (+6): y",
            "both",
        ),
    );
    let state = Arc::new(AppState::new(Arc::new(config), queue.clone(), [42; 32]));
    let mut s = Arc::try_unwrap(state).ok().unwrap();
    s.now = || NOW;
    let state = Arc::new(s);
    state.refresh();
    World {
        _dir: tmp,
        dir,
        queue,
        state,
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Resp {
    fn csrf(&self) -> String {
        let i = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[i + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

async fn send(w: &World, req: Request<Body>) -> Resp {
    let resp = app(w.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 10 << 20)
        .await
        .unwrap();
    Resp {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str, cookie: &str, form: &[(&str, &str)]) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

/// Log in; the session cookie ("msm_session=...") and a page's CSRF token.
async fn login(w: &World, user: &str) -> (String, String) {
    let form = send(w, get("/login", "")).await;
    assert_eq!(form.status, StatusCode::OK);
    let pre = form.cookie("msm_login").unwrap();
    let pre = pre.split(';').next().unwrap().to_string();
    let resp = send(
        w,
        post(
            "/login",
            &pre,
            &[
                ("csrf", &form.csrf()),
                ("user", user),
                ("password", PASSWORD),
            ],
        ),
    )
    .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.body);
    let session = resp.cookie("msm_session").unwrap();
    let cookie = session.split(';').next().unwrap().to_string();
    let page = send(w, get("/messages", &cookie)).await;
    (cookie, page.csrf())
}

fn audit(w: &World) -> Vec<serde_json::Value> {
    std::fs::read_to_string(w.dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn login_is_required_and_sessions_are_signed_cookies() {
    let w = world();
    for path in [
        "/messages",
        "/messages/A0001",
        "/messages/A0001/confirm?action=release",
    ] {
        let r = send(&w, get(path, "")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.location(), "/login");
    }
    let r = send(
        &w,
        post("/messages/A0001/action", "", &[("action", "delete")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &w,
        post("/bulk/action", "", &[("action", "delete"), ("id", "A0001")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(w.queue.done().is_empty());

    // Security headers on every page, the login page included.
    let form = send(&w, get("/login", "")).await;
    let csp = form.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "no script at all: {csp}");
    assert_eq!(form.headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(!form.body.contains("<script"));

    // Wrong password: 401, no session.
    let pre = form.cookie("msm_login").unwrap();
    assert!(pre.contains("HttpOnly") && pre.contains("SameSite=Strict"));
    let pre = pre.split(';').next().unwrap().to_string();
    let r = send(
        &w,
        post(
            "/login",
            &pre,
            &[
                ("csrf", &form.csrf()),
                ("user", "root"),
                ("password", "nope"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.cookie("msm_session").is_none());

    // Right password: the cookie is HttpOnly, SameSite=Strict; not Secure
    // on plain HTTP.
    let r = send(
        &w,
        post(
            "/login",
            &pre,
            &[
                ("csrf", &form.csrf()),
                ("user", "root"),
                ("password", PASSWORD),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = r.cookie("msm_session").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let list = send(&w, get("/messages", &cookie)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("A0001"));

    // A tampered cookie is no session.
    let tampered = cookie.replace("msm_session=", "msm_session=00");
    assert_eq!(
        send(&w, get("/messages", &tampered)).await.status,
        StatusCode::SEE_OTHER
    );

    // Logout needs the CSRF token, then the cookie stops working.
    let r = send(&w, post("/logout", &cookie, &[("csrf", "bad")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&w, post("/logout", &cookie, &[("csrf", &list.csrf())])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&w, get("/messages", &cookie)).await.location(),
        "/login"
    );

    let log = audit(&w);
    let results: Vec<(&str, &str)> = log
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap(),
                l["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        results,
        [("login", "failed"), ("login", "ok"), ("logout", "")]
    );
}

#[tokio::test]
async fn secure_cookie_and_proxy_login_only_through_trusted_proxies() {
    let w = world();
    let with_peer = |mut req: Request<Body>, ip: [u8; 4]| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                ip, 5555,
            ))));
        req
    };
    // Behind the TLS proxy: Secure.
    let mut req = get("/login", "");
    req.headers_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    let r = send(&w, with_peer(req, [10, 1, 2, 3])).await;
    assert!(r.cookie("msm_login").unwrap().contains("; Secure"));
    // The same header from anyone else is ignored.
    let mut req = get("/login", "");
    req.headers_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    let r = send(&w, with_peer(req, [192, 0, 2, 1])).await;
    assert!(!r.cookie("msm_login").unwrap().contains("Secure"));

    // The authenticating proxy's user header: believed from 10/8 only.
    let mut req = get("/messages", "");
    req.headers_mut()
        .insert("x-remote-user", "proxied".parse().unwrap());
    let r = send(&w, with_peer(req, [10, 9, 9, 9])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("B0001") && !r.body.contains("A0001"),
        "scoped to b.example"
    );
    let mut req = get("/messages", "");
    req.headers_mut()
        .insert("x-remote-user", "root".parse().unwrap());
    let r = send(&w, with_peer(req, [192, 0, 2, 1])).await;
    assert_eq!(r.location(), "/login");
    // A proxy-only user has no password to guess.
    let form = send(&w, get("/login", "")).await;
    let pre = form.cookie("msm_login").unwrap();
    let r = send(
        &w,
        post(
            "/login",
            pre.split(';').next().unwrap(),
            &[
                ("csrf", &form.csrf()),
                ("user", "proxied"),
                ("password", ""),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_needs_its_csrf_token_and_is_rate_limited() {
    let w = world_with(|c| c.web.login_max_failures = 3);
    let form = send(&w, get("/login", "")).await;
    let pre = form.cookie("msm_login").unwrap();
    let pre = pre.split(';').next().unwrap().to_string();
    // No token, or no login cookie: refused before any password check.
    let r = send(
        &w,
        post("/login", &pre, &[("user", "root"), ("password", PASSWORD)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &w,
        post(
            "/login",
            "",
            &[
                ("csrf", &form.csrf()),
                ("user", "root"),
                ("password", PASSWORD),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    for _ in 0..3 {
        let r = send(
            &w,
            post(
                "/login",
                &pre,
                &[
                    ("csrf", &form.csrf()),
                    ("user", "root"),
                    ("password", "guess"),
                ],
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is refused for a while.
    let r = send(
        &w,
        post(
            "/login",
            &pre,
            &[
                ("csrf", &form.csrf()),
                ("user", "root"),
                ("password", PASSWORD),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(audit(&w)
        .iter()
        .any(|l| l["result"] == "refused: too many failures"));
}

#[tokio::test]
async fn list_shows_findings_filters_and_scopes() {
    let w = world();
    let (root, _) = login(&w, "root").await;
    let r = send(&w, get("/messages", &root)).await;
    assert_eq!(r.status, StatusCode::OK);
    // Decoded Japanese subject, sender → recipient, verdict, score, findings in words.
    assert!(
        r.body.contains("[SUSPICIOUS] RE: 請求書の送付について"),
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains("info@kansai-unrelated.example → yuki@customer.example"));
    assert!(r.body.contains("display_name.embedded_address"));
    assert!(r.body.contains("(4)"), "four held");
    for id in ["687579D8095", "A0001", "B0001", "M0001"] {
        assert!(r.body.contains(&format!("/messages/{id}\"")), "{id}");
    }
    // Filters: rule, sender domain, queue id, Message-ID, age.
    let r = send(&w, get("/messages?rule=links.download", &root)).await;
    assert!(r.body.contains("B0001") && !r.body.contains("A0001"));
    let r = send(&w, get("/messages?domain=other.example", &root)).await;
    assert!(r.body.contains("B0001") && !r.body.contains("M0001"));
    let r = send(&w, get("/messages?q=687579D8095", &root)).await;
    assert!(r.body.contains("(1)") && r.body.contains("687579D8095"));
    let r = send(
        &w,
        get(
            "/messages?q=%3Cbd81c2e0a1%40kansai-unrelated.example%3E",
            &root,
        ),
    )
    .await;
    assert!(r.body.contains("687579D8095") && r.body.contains("(1)"));
    let r = send(&w, get("/messages?age=1h", &root)).await;
    assert!(r.body.contains("(3)") && !r.body.contains("/messages/687579D8095\""));

    // alice (a.example): mail to a.example, and the mixed one, nothing else.
    let (alice, _) = login(&w, "alice").await;
    let r = send(&w, get("/messages", &alice)).await;
    assert!(r.body.contains("A0001") && r.body.contains("M0001"));
    assert!(!r.body.contains("B0001") && !r.body.contains("687579D8095"));
    assert!(
        !r.body.contains("bob@b.example"),
        "other domains' recipients hidden"
    );
    for id in ["B0001", "687579D8095"] {
        let r = send(&w, get(&format!("/messages/{id}"), &alice)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
        let r = send(
            &w,
            get(&format!("/messages/{id}/confirm?action=release"), &alice),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
    }
}

#[tokio::test]
async fn message_view_explains_and_shows_text_to_reviewers_only() {
    let w = world();
    let (root, _) = login(&w, "root").await;
    let r = send(&w, get("/messages/687579D8095", &root)).await;
    assert_eq!(r.status, StatusCode::OK);
    // The "what this means" line, with the partner and the month.
    assert!(r.body.contains("This message is a reply into a conversation you had with 鈴木 一郎 in March 2026, but it was sent from an address (info@kansai-unrelated.example) that never took part in that conversation"), "{}", r.body);
    // Rule descriptions from the catalogue.
    let (_, rules) = malspam_milter::detectors::catalog()
        .into_iter()
        .find(|(d, _)| *d == "thread_hijack")
        .unwrap();
    let desc = rules
        .iter()
        .find(|r| r.name == "revived_thread")
        .unwrap()
        .description;
    assert!(
        r.body.contains(&maud::html! { (desc) }.into_string()),
        "{desc}"
    );
    // The attachment tree with the decrypted document, the masked password.
    assert!(r.body.contains("請求書_1121.zip/請求書_1121.doc"));
    assert!(r.body.contains("decrypted"));
    // Headers decoded; the text, as text.
    assert!(r.body.contains("鈴木 一郎"));
    assert!(r.body.contains("<pre class=\"text\">"));
    assert!(r.body.contains("Release (deliver now)"));

    let (viewer, _) = login(&w, "viewer").await;
    let r = send(&w, get("/messages/687579D8095", &viewer)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("What this means") && r.body.contains("Findings"));
    assert!(
        !r.body.contains("<pre class=\"text\">"),
        "viewers get no text"
    );
    assert!(!r.body.contains("Release (deliver now)"));

    // Japanese by Accept-Language.
    let mut req = get("/messages/687579D8095", &root);
    req.headers_mut()
        .insert(header::ACCEPT_LANGUAGE, "ja,en-US;q=0.8".parse().unwrap());
    let r = send(&w, req).await;
    assert!(r.body.contains("<html lang=\"ja\">"));
    assert!(r.body.contains("これはどういうことか"));
    assert!(
        r.body.contains("鈴木 一郎 との2026年3月のやり取り"),
        "{}",
        r.body
    );
    let mut req = get("/messages", &root);
    req.headers_mut().insert(
        header::ACCEPT_LANGUAGE,
        "fr, en;q=0.5, ja;q=0.9".parse().unwrap(),
    );
    assert!(send(&w, req).await.body.contains("保留中のメッセージ"));
}

#[tokio::test]
async fn actions_need_csrf_role_and_scope_and_are_audited() {
    let w = world();
    let (viewer, vcsrf) = login(&w, "viewer").await;
    let r = send(&w, get("/messages/A0001/confirm?action=release", &viewer)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &w,
        post(
            "/messages/A0001/action",
            &viewer,
            &[("csrf", &vcsrf), ("action", "release")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let (root, csrf) = login(&w, "root").await;
    // A CSRF token from another session, or none: refused, nothing done.
    for bad in ["", vcsrf.as_str(), "00"] {
        let r = send(
            &w,
            post(
                "/messages/A0001/action",
                &root,
                &[("csrf", bad), ("action", "release")],
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad:?}");
    }
    assert!(w.queue.done().is_empty());

    // Confirmation page, then the POST it carries.
    let c = send(&w, get("/messages/A0001/confirm?action=release", &root)).await;
    assert_eq!(c.status, StatusCode::OK);
    assert!(c
        .body
        .contains("Deliver these messages to their recipients now?"));
    let r = send(
        &w,
        post(
            "/messages/A0001/action",
            &root,
            &[("csrf", &c.csrf()), ("action", "release")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/messages?done=release&ok=1&failed=0");
    assert_eq!(w.queue.done(), ["release A0001 by root (web)"]);
    let list = send(&w, get("/messages?done=release", &root)).await;
    assert!(!list.body.contains("A0001") && list.body.contains("Released"));

    // alice may not act on mail that also goes to b.example.
    let (alice, acsrf) = login(&w, "alice").await;
    let r = send(
        &w,
        post(
            "/messages/M0001/action",
            &alice,
            &[("csrf", &acsrf), ("action", "delete")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Nor allowlist (it applies to every domain).
    let r = send(
        &w,
        get("/messages/M0001/confirm?action=release_allowlist", &alice),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Bulk: confirm page lists the selection, then delete both.
    let c = send(
        &w,
        post(
            "/bulk",
            &root,
            &[
                ("csrf", &csrf),
                ("action", "delete"),
                ("id", "B0001"),
                ("id", "M0001"),
            ],
        ),
    )
    .await;
    assert_eq!(c.status, StatusCode::OK);
    assert!(
        c.body.contains("B0001") && c.body.contains("M0001") && c.body.contains("cannot be undone")
    );
    let r = send(
        &w,
        post(
            "/bulk/action",
            &root,
            &[
                ("csrf", &c.csrf()),
                ("action", "delete"),
                ("id", "B0001"),
                ("id", "M0001"),
            ],
        ),
    )
    .await;
    assert_eq!(r.location(), "/messages?done=delete&ok=2&failed=0");
    assert_eq!(w.queue.done()[1..], ["delete B0001", "delete M0001"]);

    // Release and allowlist: the sender goes into the config file.
    let r = send(
        &w,
        post(
            "/messages/687579D8095/action",
            &root,
            &[("csrf", &csrf), ("action", "release_allowlist")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let config = malspam_milter::Config::load(Some(&w.dir.join("milter.toml"))).unwrap();
    assert_eq!(config.allowlist.senders, ["info@kansai-unrelated.example"]);

    // Every action in the audit log: who, when, what.
    let log: Vec<serde_json::Value> = audit(&w)
        .into_iter()
        .filter(|l| l["action"] != "login")
        .collect();
    let summary: Vec<(String, String, String)> = log
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap().to_string(),
                l["user"].as_str().unwrap().to_string(),
                l["queue_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("release".into(), "root".into(), "A0001".into()),
            ("delete".into(), "root".into(), "B0001".into()),
            ("delete".into(), "root".into(), "M0001".into()),
            (
                "release_allowlist".into(),
                "root".into(),
                "687579D8095".into()
            ),
        ]
    );
    assert_eq!(log[0]["time"], NOW);
    assert_eq!(log[0]["subject"], "for A");
    assert!(log[3]["result"]
        .as_str()
        .unwrap()
        .contains("added to [allowlist] senders"));
}

#[tokio::test]
async fn a_hostile_message_renders_inert() {
    let w = world();
    let token = "A".repeat(10_000);
    let subject = format!("<script>alert(1)</script> invoice\u{202e}fdp.exe {token}");
    let html_body = format!(
        "--b\nContent-Type: text/html\n\n<html><body onload=\"alert(2)\"><script>alert(3)</script>\
         <a href=\"javascript:alert(4)\">click</a><img src=\"http://tracker.example/p.gif\">\
         <iframe src=\"https://evil.example/\"></iframe>{token}</body></html>\n\
         --b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"<img src=x onerror=alert(5)>\u{202e}cod.exe\"\n\
         Content-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n--b--\n"
    );
    let message = format!(
        "From: \"<b>Boss</b>\u{202e}\" <x@evil.example>\nTo: ann@a.example\nSubject: {subject}\n\
         Message-ID: <hostile@evil.example>\nX-Malspam-Verdict: quarantine\nX-Malspam-Score: 9\n\
         X-Malspam-Findings: links.download (+5): <a href=\"javascript:alert(6)\">x</a>\n\
         MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n{html_body}"
    );
    w.queue.add(
        "E0001",
        NOW - 5,
        "x@evil.example",
        &["ann@a.example"],
        message.into_bytes(),
    );
    w.state.refresh();
    let (root, _) = login(&w, "root").await;
    for path in [
        "/messages",
        "/messages/E0001",
        "/messages/E0001/confirm?action=delete",
    ] {
        let r = send(&w, get(path, &root)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let b = &r.body;
        assert!(
            b.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: escaped subject"
        );
        for bad in [
            "<script",
            "<iframe",
            "<img",
            "onload=",
            "onerror=\"",
            "href=\"javascript:",
            "<b>Boss",
        ] {
            assert!(!b.contains(bad), "{path}: {bad} in the page");
        }
        assert!(!b.contains('\u{202e}'), "{path}: raw bidi override");
        assert!(
            b.contains("\\u{202e}"),
            "{path}: bidi override shown escaped"
        );
        // Links only to our own pages.
        for href in b.split("href=\"").skip(1) {
            let target = &href[..href.find('"').unwrap()];
            assert!(target.starts_with('/'), "{path}: link to {target}");
        }
        for src in ["src=\"http", "src=\"//", "url("] {
            assert!(!b.contains(src), "{path}: remote content {src}");
        }
    }
    let r = send(&w, get("/messages/E0001", &root)).await;
    // The long token is there, whole, in a cell that wraps.
    assert!(r.body.contains(&token));
    assert!(
        r.body.contains("hxxp://tracker[.]example/p.gif"),
        "defanged link"
    );
    let css = send(&w, get("/static/style.css", "")).await;
    assert!(css.body.contains("overflow-wrap: anywhere"));
    assert!(css.body.len() < 8 * 1024, "a few KB of CSS");
}

#[tokio::test]
async fn ten_thousand_held_messages_page_by_fifty() {
    let w = world();
    for i in 0..10_000u64 {
        let id = format!("F{i:05}");
        w.queue.add(
            &id,
            NOW - 10_000 - i,
            &format!("s{i}@bulk.example"),
            &["ann@a.example"],
            simple(
                &format!("bulk {i}"),
                "ann@a.example",
                "quarantine",
                "office_macro.present (+5): m.doc",
                "x",
            ),
        );
    }
    w.state.refresh();
    let (root, _) = login(&w, "root").await;
    let start = std::time::Instant::now();
    let r = send(&w, get("/messages?page=3", &root)).await;
    eprintln!(
        "list page 3 of 10,004 held messages: {:?} (debug build)",
        start.elapsed()
    );
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("(10004)"));
    assert!(r.body.contains("3 / 201"));
    assert_eq!(r.body.matches("<tr class=\"held\">").count(), 50);
    // Newest first: four of ours, then F00000...; page 3 starts at F00096.
    assert!(r.body.contains("/messages/F00096\"") && r.body.contains("/messages/F00145\""));
    assert!(!r.body.contains("/messages/F00146\""));
    let r = send(&w, get("/messages?page=999", &root)).await;
    assert!(r.body.contains("201 / 201"));
    let r = send(&w, get("/messages?domain=bulk.example&q=F09999", &root)).await;
    assert!(r.body.contains("(1)") && r.body.contains("bulk 9999"));
}

#[tokio::test]
async fn root_and_stylesheet_routes() {
    let w = world();
    let r = send(&w, get("/", "")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/messages");
    let css = send(&w, get("/static/style.css", "")).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    // A logged-in user asking for the login form goes to the list.
    let (root, _) = login(&w, "root").await;
    assert_eq!(send(&w, get("/login", &root)).await.location(), "/messages");
    // Unknown action names and ids that are no queue ids: refused.
    let r = send(&w, get("/messages/A0001/confirm?action=shred", &root)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for bad in ["ALL", "..%2Fetc", "A0001%20hold"] {
        let r = send(&w, get(&format!("/messages/{bad}"), &root)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
    }
}

/// `malspam-milter web user add|del` and `web` refusing to start without users.
#[test]
fn web_user_commands() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    const MILTER: &str = env!("CARGO_BIN_EXE_malspam-milter");
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let config = dir.path().join("m.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nusers_file = \"{}\"\nlisten = \"127.0.0.1:1\"\n",
            users.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(MILTER)
            .arg("web")
            .args(args)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The command may refuse (and exit) before it reads stdin.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    };
    let out = run(&[], "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no users in"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &[
            "user",
            "add",
            "tanaka",
            "--role",
            "reviewer",
            "--domains",
            "customer.example",
        ],
        "a long password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "tanaka: reviewer of customer.example in {}",
            users.display()
        )
    );
    let listed = auth::load_users(&users).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(auth::verify_password(&listed[0], "a long password"));
    assert_eq!(listed[0].domains, ["customer.example"]);
    // Refusals: short password, bad role, bad name, bad domains.
    for (args, stdin, why) in [
        (
            vec!["user", "add", "x"],
            "short\n",
            "at least 10 characters",
        ),
        (
            vec!["user", "add", "x", "--role", "admin"],
            "a long password\n",
            "--role must be",
        ),
        (
            vec!["user", "add", "x y"],
            "a long password\n",
            "a user name is",
        ),
        (
            vec!["user", "add", "x", "--domains", "a b"],
            "a long password\n",
            "domains must be",
        ),
    ] {
        let out = run(&args, stdin);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let out = run(&["user", "del", "tanaka"], "");
    assert!(out.status.success());
    assert!(auth::load_users(&users).unwrap().is_empty());
    let out = run(&["user", "del", "tanaka"], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user tanaka"));
}

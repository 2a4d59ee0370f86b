//! Milter protocol glue: each indymilter callback hands its arguments to the
//! [`Session`], and end of message scans and applies the verdict.

use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, Macros, NegotiateContext,
    ProtoOpts, SetErrorReply, SocketInfo, Status,
};
use tracing::{debug, error, info, warn};

use super::session::Session;
use super::Daemon;
use crate::headers::{findings_shown, prefixed_subject, verdict_headers_for};
use crate::report::{Report, Verdict};

/// Longest quarantine reason we send; Postfix logs it and keeps it in the queue file.
const MAX_REASON: usize = 900;

pub fn make(daemon: Arc<Daemon>) -> Callbacks<Session> {
    let d_negotiate = daemon.clone();
    let d_mail = daemon.clone();
    let d_eom = daemon;
    Callbacks::new()
        .on_negotiate(move |cx, actions, opts| {
            let daemon = d_negotiate.clone();
            Box::pin(async move { negotiate(&daemon, cx, actions, opts) })
        })
        .on_connect(|cx, hostname, socket| Box::pin(async move { connect(cx, hostname, socket) }))
        .on_helo(|cx, name| Box::pin(async move { helo(cx, name) }))
        .on_mail(move |cx, args| {
            let daemon = d_mail.clone();
            Box::pin(async move { mail(&daemon, cx, args).await })
        })
        .on_rcpt(|cx, args| Box::pin(async move { rcpt(cx, args) }))
        .on_header(|cx, name, value| Box::pin(async move { header(cx, name, value) }))
        .on_eoh(|cx| Box::pin(async move { eoh(cx) }))
        .on_body(|cx, chunk| Box::pin(async move { body(cx, chunk) }))
        .on_eom(move |cx| {
            let daemon = d_eom.clone();
            Box::pin(async move { eom(&daemon, cx).await })
        })
        .on_abort(|cx| Box::pin(async move { abort(cx) }))
}

/// The macros we read, by stage. Nothing else is requested.
fn requested_macros() -> [(MacroStage, &'static str); 3] {
    [
        // The SASL login of authenticated submission (allowlists, outbound).
        (MacroStage::Mail, "{auth_authen}"),
        // The queue id, for log lines and headers; Postfix knows it from DATA.
        (MacroStage::Eoh, "i"),
        (MacroStage::Eom, "i"),
    ]
}

/// The actions the current policy may use. An MTA that lacks one is refused.
fn needed_actions(daemon: &Daemon) -> Actions {
    let engine = daemon.engine();
    // Add our headers; delete forged ones (and change the Subject if so configured).
    let mut needed = Actions::ADD_HEADER | Actions::CHANGE_HEADER;
    // Observe mode never quarantines.
    if !engine.config().policy.observe {
        needed |= Actions::QUARANTINE;
    }
    needed
}

fn negotiate(
    daemon: &Daemon,
    cx: &mut NegotiateContext<Session>,
    mta_actions: Actions,
    mta_opts: ProtoOpts,
) -> Status {
    let needed = needed_actions(daemon);
    if !mta_actions.contains(needed) {
        error!(
            "refusing MTA connection: it does not offer the milter actions {:?} (offers {:?}); \
             Postfix >= 2.6 and Sendmail >= 8.14 do",
            needed.difference(mta_actions),
            mta_actions
        );
        return Status::Reject;
    }
    cx.requested_actions = needed;
    // `requested_opts` already skips the stages we have no callback for.
    let skip_allowed = mta_opts.contains(ProtoOpts::SKIP);
    if skip_allowed {
        cx.requested_opts |= ProtoOpts::SKIP;
    }
    for (stage, names) in requested_macros() {
        cx.requested_macros
            .insert(stage, CString::new(names).expect("no NUL in macro names"));
    }
    // Stages where we only listen: the MTA need not wait for a reply, which
    // saves a round trip per header and per envelope step. The body is not
    // among them (we answer SKIP past the size limit), nor end of message.
    let no_reply = mta_opts & NO_REPLY_STAGES;
    cx.requested_opts |= no_reply;
    let mut session = Session::default();
    session.skip_allowed = skip_allowed;
    session.no_reply = no_reply;
    cx.data = Some(session);
    Status::Continue
}

/// Stages whose callbacks never change the outcome, so need no reply.
pub const NO_REPLY_STAGES: ProtoOpts = ProtoOpts::NOREPLY_CONNECT
    .union(ProtoOpts::NOREPLY_HELO)
    .union(ProtoOpts::NOREPLY_MAIL)
    .union(ProtoOpts::NOREPLY_RCPT)
    .union(ProtoOpts::NOREPLY_HEADER)
    .union(ProtoOpts::NOREPLY_EOH);

/// `Continue`, or `Noreply` where that was negotiated for this stage.
fn carry_on(data: &mut Option<Session>, stage: ProtoOpts) -> Status {
    if session(data).no_reply.contains(stage) {
        Status::Noreply
    } else {
        Status::Continue
    }
}

/// The connection's session (created at negotiation; defensively here too).
fn session(data: &mut Option<Session>) -> &mut Session {
    data.get_or_insert_with(Session::default)
}

fn connect(cx: &mut Context<Session>, hostname: CString, socket: SocketInfo) -> Status {
    let addr: Option<IpAddr> = match socket {
        SocketInfo::Inet(addr) => Some(addr.ip()),
        _ => None,
    };
    session(&mut cx.data).connect(&hostname.to_string_lossy(), addr);
    carry_on(&mut cx.data, ProtoOpts::NOREPLY_CONNECT)
}

fn helo(cx: &mut Context<Session>, name: CString) -> Status {
    session(&mut cx.data).helo(&name.to_string_lossy());
    carry_on(&mut cx.data, ProtoOpts::NOREPLY_HELO)
}

async fn mail(daemon: &Daemon, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let from = args
        .first()
        .map(|a| a.to_string_lossy())
        .unwrap_or_default();
    let auth = macro_string(&cx.macros, c"{auth_authen}").map(Cow::into_owned);
    let engine = daemon.engine();
    let config = engine.config();
    let in_flight = daemon.begin_in_flight();
    session(&mut cx.data).begin_message(
        &from,
        auth,
        config.milter.max_message_size,
        &config.headers,
        in_flight,
    );
    if let (Some(message), Some(size)) = (session(&mut cx.data).message(), declared_size(&args)) {
        message.expect_size(size);
    }
    carry_on(&mut cx.data, ProtoOpts::NOREPLY_MAIL)
}

/// The `SIZE=` the client gave with `MAIL FROM` (RFC 1870), if any.
fn declared_size(args: &[CString]) -> Option<u64> {
    args.iter().skip(1).find_map(|a| {
        let a = a.to_bytes();
        let value = a
            .get(..5)?
            .eq_ignore_ascii_case(b"SIZE=")
            .then(|| &a[5..])?;
        std::str::from_utf8(value).ok()?.parse().ok()
    })
}

fn rcpt(cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    if let (Some(message), Some(rcpt)) = (session(&mut cx.data).message(), args.first()) {
        message.add_recipient(&rcpt.to_string_lossy());
    }
    carry_on(&mut cx.data, ProtoOpts::NOREPLY_RCPT)
}

fn header(cx: &mut Context<Session>, name: CString, value: CString) -> Status {
    if let Some(message) = session(&mut cx.data).message() {
        message.header(name.as_bytes(), value.as_bytes());
    }
    carry_on(&mut cx.data, ProtoOpts::NOREPLY_HEADER)
}

fn eoh(cx: &mut Context<Session>) -> Status {
    let queue_id = macro_string(&cx.macros, c"i").map(Cow::into_owned);
    if let Some(message) = session(&mut cx.data).message() {
        if let Some(id) = queue_id {
            message.set_queue_id(&id);
        }
        message.end_of_headers();
    }
    carry_on(&mut cx.data, ProtoOpts::NOREPLY_EOH)
}

fn body(cx: &mut Context<Session>, chunk: Bytes) -> Status {
    let session = session(&mut cx.data);
    let skip_allowed = session.skip_allowed;
    let buffering = session.message().is_none_or(|m| m.body(&chunk));
    if !buffering && skip_allowed {
        // Past the size limit: tell the MTA to stop sending the body.
        Status::Skip
    } else {
        Status::Continue
    }
}

fn abort(cx: &mut Context<Session>) -> Status {
    // Dropping the message also ends its in-flight mark.
    session(&mut cx.data).take_message();
    Status::Continue
}

async fn eom(daemon: &Daemon, cx: &mut EomContext<Session>) -> Status {
    let queue_id = macro_string(&cx.macros, c"i").map(Cow::into_owned);
    let Some(mut message) = session(&mut cx.data).take_message() else {
        // Never pass what was not scanned: the MTA retries later.
        warn!("end of message without MAIL FROM; answering tempfail");
        return Status::Tempfail;
    };
    if let Some(id) = queue_id {
        message.set_queue_id(&id);
    }
    let engine = daemon.engine();
    let envelope = message.envelope.clone();
    let id = envelope.log_id().to_string();
    let to_delete = message.own_headers_to_delete();
    let subject = message.subject().map(str::to_owned);
    let to_outsiders = !findings_shown(engine.config(), &envelope);
    let started = std::time::Instant::now();
    // The envelope stage, with every recipient known: an outbound account
    // on hold is held, and its message counted, whatever becomes of the
    // content scan.
    let pre = daemon.envelope_stage(engine.clone(), &envelope).await;
    // Allowlisted mail passes unscanned whatever its size.
    let report = if message.too_large() && engine.policy().allowlisted(&envelope).is_none() {
        engine.too_large(message.size(), &pre)
    } else {
        daemon
            .scan(engine.clone(), pre, envelope, message.into_raw())
            .await
    };
    daemon.commit(engine.clone(), report.effects.clone()).await;

    crate::metrics::observe_report(&report, started.elapsed());
    // The fields are for the journal and `[log] format = "json"`; the text
    // line carries the same in its message.
    let rules: Vec<String> = report.findings.iter().map(|f| f.full_rule()).collect();
    info!(
        queue_id = %id,
        verdict = %report.verdict,
        score = crate::report::round2(report.score),
        rules = %rules.join(","),
        "{id}: {}",
        report.log_summary()
    );
    // Held mail keeps its findings for the reviewer (quarantine show).
    let show_findings = !to_outsiders || report.verdict >= Verdict::Quarantine;
    if !show_findings && !report.findings.is_empty() {
        info!(
            "{id}: findings (left out of the headers of outbound mail to outside recipients): {}",
            crate::sanitize::one_line(&report.finding_lines().join("; "))
        );
    }
    let headers = Headers {
        to_delete: &to_delete,
        subject: subject.as_deref(),
        show_findings,
    };
    match act(&engine, cx, &report, headers).await {
        Ok(status) => status,
        Err(e) => {
            // The verdict could not be applied: never pass (or lose) the
            // message silently; the client retries later.
            error!(
                "{id}: cannot apply verdict {}: {e}; answering tempfail",
                report.verdict
            );
            Status::Tempfail
        }
    }
}

/// What [`act`] needs of the message's headers.
struct Headers<'a> {
    /// Incoming copies of our headers: (name, index).
    to_delete: &'a [(String, i32)],
    subject: Option<&'a str>,
    /// False for outbound mail to outside recipients ([`findings_shown`]).
    show_findings: bool,
}

/// Apply the verdict: delete forged headers, add ours (and the Subject
/// prefix if configured), quarantine or reject.
async fn act(
    engine: &crate::Engine,
    cx: &mut EomContext<Session>,
    report: &Report,
    headers: Headers<'_>,
) -> Result<Status, indymilter::ActionError> {
    let Headers {
        to_delete,
        subject,
        show_findings,
    } = headers;
    let config = engine.config();
    if report.verdict == Verdict::Reject {
        let text = &config.policy.reject_message;
        if let Err(e) = cx
            .reply
            .set_error_reply("550", Some("5.7.1"), [text.as_str()])
        {
            warn!("policy.reject_message cannot be sent as an SMTP reply ({e}); using the MTA's default text");
        }
        return Ok(Status::Reject);
    }
    for (name, index) in to_delete {
        debug!("deleting incoming header {name} #{index}");
        cx.actions
            .change_header(name.as_str(), *index, None::<&str>)
            .await?;
    }
    for (name, value) in
        verdict_headers_for(report, &config.headers, config.policy.tag, show_findings)
    {
        cx.actions.add_header(name, value).await?;
    }
    if let Some(new) = prefixed_subject(report, &config.headers, subject.unwrap_or("")) {
        match subject {
            Some(_) => cx.actions.change_header("Subject", 1, Some(new)).await?,
            None => cx.actions.add_header("Subject", new).await?,
        }
    }
    if report.verdict == Verdict::Quarantine {
        cx.actions.quarantine(quarantine_reason(report)).await?;
    }
    Ok(Status::Continue)
}

/// `malspam: score 12; office_macro.autoexec (+8): invoice.doc: …; …`, bounded.
fn quarantine_reason(report: &Report) -> String {
    let mut reason = crate::sanitize::one_line(&format!(
        "malspam-milter: score {}; {}",
        crate::report::round2(report.score),
        report.finding_lines().join("; ")
    ));
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

fn macro_string<'a>(macros: &'a Macros, name: &CStr) -> Option<Cow<'a, str>> {
    macros
        .get(name)
        .map(|v| v.to_string_lossy())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<CString> {
        list.iter().map(|a| CString::new(*a).unwrap()).collect()
    }

    #[test]
    fn the_declared_size_is_read_from_the_esmtp_arguments() {
        assert_eq!(
            declared_size(&args(&["<a@b.example>", "BODY=8BITMIME", "size=2048"])),
            Some(2048)
        );
        // The sender itself is never read as a parameter.
        assert_eq!(declared_size(&args(&["SIZE=5"])), None);
        assert_eq!(declared_size(&args(&["<a@b.example>", "SIZE=lots"])), None);
        assert_eq!(declared_size(&args(&["<a@b.example>", "SIZE="])), None);
        assert_eq!(declared_size(&args(&["<a@b.example>"])), None);
    }
}

//! The protocol floor: a milter that receives every message the way
//! malspam-milter does (same "no reply" stages, body chunks, one header
//! added at end of message) and scans nothing. `scripts/postfix-bench.sh`
//! runs it with `MILTER_KIND=null` to show what any milter costs Postfix on
//! the same machine, apart from the work it does.
//!
//!   cargo build --release --example null_milter
//!   target/release/examples/null_milter /path/to/milter.sock

use indymilter::{
    Actions, Callbacks, ContextActions, EomContext, NegotiateContext, ProtoOpts, Status,
};
use malspam_milter::milter::NO_REPLY_STAGES;
use tokio::net::UnixListener;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: null_milter SOCKET_PATH");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("cannot bind the socket");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .expect("chmod socket");
        let callbacks = Callbacks::<()>::new()
            .on_negotiate(|cx, _, opts| Box::pin(negotiate(cx, opts)))
            .on_connect(|_, _, _| Box::pin(async { Status::Noreply }))
            .on_helo(|_, _| Box::pin(async { Status::Noreply }))
            .on_mail(|_, _| Box::pin(async { Status::Noreply }))
            .on_rcpt(|_, _| Box::pin(async { Status::Noreply }))
            .on_header(|_, _, _| Box::pin(async { Status::Noreply }))
            .on_eoh(|_| Box::pin(async { Status::Noreply }))
            .on_body(|_, _| Box::pin(async { Status::Continue }))
            .on_eom(|cx| Box::pin(eom(cx)));
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            result = indymilter::run(listener, callbacks, Default::default(), shutdown) => {
                result.expect("milter failed");
            }
            _ = term.recv() => {}
        }
    });
}

async fn negotiate(cx: &mut NegotiateContext<()>, mta_opts: ProtoOpts) -> Status {
    cx.requested_actions = Actions::ADD_HEADER;
    // The same "no reply" stages as malspam-milter, so the two compare.
    cx.requested_opts |= mta_opts & NO_REPLY_STAGES;
    Status::Continue
}

async fn eom(cx: &mut EomContext<()>) -> Status {
    let _ = cx.actions.add_header("X-Null-Milter", "seen").await;
    Status::Continue
}

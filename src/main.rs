use clap::Parser;

use malspam_milter::cli::{self, Cli, Command, ConfigCommand};
use malspam_milter::{store, Config, Engine};

/// Let SIGPIPE end the process quietly (the default disposition), for the
/// commands that print to a terminal or a pipe. (The library forbids
/// unsafe code; this one call lives in the binary.)
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL is async-signal-safe
    // and done before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    let mut cli = Cli::parse();
    let serves = matches!(
        cli.command,
        Command::Run { .. } | Command::Web { command: None, .. }
    );
    if !serves {
        // A command piped into `head` ends quietly when the reader goes
        // away, as Unix tools do (Rust ignores SIGPIPE, so every print
        // would fail with "Broken pipe"). The daemons keep ignoring it: a
        // closed MTA or browser connection must not kill them.
        restore_sigpipe();
    }
    cli.command.resolve_config();
    let code = match cli.command {
        Command::Run { config } => cli::run::run(config),
        Command::Check {
            config,
            json,
            fail_on,
            paths,
        } => match Config::load(config.as_deref()) {
            Ok(config) => {
                // `check` only reads the store; a store it cannot open (a
                // read-only machine) is replaced by an empty one, said aloud.
                let (store, fallback) = store::open_or_memory(&config.store);
                if let Some(why) = fallback {
                    // A store error says "state store:" itself.
                    eprintln!("malspam-milter: {why}");
                }
                match Engine::with_store(config, store) {
                    Ok(engine) => {
                        cli::check::run(&engine, &paths, json, fail_on.map(|f| f.verdict()))
                    }
                    Err(e) => {
                        eprint!("{e}");
                        1
                    }
                }
            }
            Err(e) => {
                eprint!("{e}");
                1
            }
        },
        Command::Learn { config, paths } => match Config::load(config.as_deref()) {
            Ok(config) => match store::open(&config.store) {
                Ok(store) => match Engine::with_store(config, store) {
                    Ok(engine) => {
                        let store_config = engine.config().store.clone();
                        cli::learn::hand_store_to_owner(&store_config);
                        let code = cli::learn::run(&engine, &paths);
                        // Closed first: the last writes and the WAL's
                        // checkpoint happen on drop.
                        drop(engine);
                        cli::learn::hand_store_to_owner(&store_config);
                        code
                    }
                    Err(e) => {
                        eprint!("{e}");
                        1
                    }
                },
                Err(e) => {
                    eprintln!("malspam-milter: learn: {e}");
                    1
                }
            },
            Err(e) => {
                eprint!("{e}");
                1
            }
        },
        Command::Config {
            command: ConfigCommand::Check { config },
        } => cli::config_check(config.as_deref()),
        Command::Rules => cli::list_rules(),
        Command::GenerateDocs { dir } => cli::docs::generate(&dir),
        Command::Outbound { command } => cli::outbound::run(command),
        Command::Quarantine { command } => cli::quarantine::run(command),
        Command::Web { config, command } => cli::web::run(config, command),
        Command::Structure { config, paths } => match Config::load(config.as_deref()) {
            Ok(config) => cli::structure(&config, &paths),
            Err(e) => {
                eprint!("{e}");
                1
            }
        },
    };
    std::process::exit(code);
}

use clap::Parser;

use malspam_milter::cli::{self, Cli, Command, ConfigCommand};
use malspam_milter::{store, Config, Engine};

fn main() {
    let cli = Cli::parse();
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
                    eprintln!("malspam-milter: state store: {why}");
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
                    Ok(engine) => cli::learn::run(&engine, &paths),
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

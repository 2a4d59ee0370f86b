//! `malspam-milter web`: serve the reviewers' page; `web user add|del`:
//! manage its users file.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::config::Config;
use crate::web::auth::{self, AuthError, DomainsError, Role, User};
use crate::web::WebError;

/// `web` or `web user ...` failed; printed after `malspam-milter: web: `.
#[derive(Debug, thiserror::Error)]
pub enum WebCommandError {
    /// Serving the page.
    #[error(transparent)]
    Serve(#[from] WebError),
    /// Not a user name (already escaped for a terminal).
    #[error("{0:?}: a user name is letters, digits and ._@- (at most 64)")]
    BadName(String),
    #[error("--role must be viewer or reviewer, not {0:?}")]
    BadRole(String),
    #[error(transparent)]
    Domains(#[from] DomainsError),
    /// The users file, or hashing the password.
    #[error(transparent)]
    Users(#[from] AuthError),
    #[error("reading the password: {0}")]
    ReadPassword(#[source] std::io::Error),
    #[error("reading the password from stdin: {0}")]
    ReadPasswordStdin(#[source] std::io::Error),
    #[error("the passwords differ")]
    PasswordsDiffer,
    #[error("the password must have at least 10 characters")]
    PasswordTooShort,
}

#[derive(Debug, Subcommand)]
pub enum WebCommand {
    /// Users of the page (the `[web] users_file`).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user, or replace one of that name. The password is asked on
    /// the terminal, or read as the first line of stdin.
    Add {
        name: String,
        /// viewer (metadata and findings) or reviewer (also release,
        /// delete, message text).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// `*` for every domain, or the domains (comma-separated) whose mail
        /// the user may see.
        #[arg(long, default_value = "*")]
        domains: String,
        /// No password: the user logs in only through the trusted
        /// authenticating proxy ([web] proxy_user_header).
        #[arg(long)]
        proxy_only: bool,
    },
    /// Remove a user.
    Del { name: String },
}

/// Run `web` (serve) or `web user ...`; returns the exit code.
pub fn run(config_path: Option<PathBuf>, command: Option<WebCommand>) -> i32 {
    super::init_logging("info");
    let Some(config) = super::load_config(config_path.as_deref()) else {
        return 1;
    };
    let result = match command {
        None => crate::web::serve(config).map_err(WebCommandError::from),
        Some(WebCommand::User { command }) => user(&config, command),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("malspam-milter: web: {e}");
            1
        }
    }
}

fn user(config: &Config, command: UserCommand) -> Result<(), WebCommandError> {
    let path = Path::new(&config.web.users_file);
    match command {
        UserCommand::Add {
            name,
            role,
            domains,
            proxy_only,
        } => {
            if !auth::valid_name(&name) {
                return Err(WebCommandError::BadName(crate::quarantine::clean(&name)));
            }
            let role = Role::parse(&role).ok_or(WebCommandError::BadRole(role))?;
            let domains = auth::parse_domains(&domains)?;
            let hash = if proxy_only {
                None
            } else {
                Some(auth::hash_password(&read_password(&name)?)?)
            };
            auth::save_user(
                path,
                User {
                    name: name.clone(),
                    role,
                    domains: domains.clone(),
                    hash,
                },
            )?;
            println!(
                "{name}: {} of {} in {}",
                role.as_str(),
                if domains.is_empty() {
                    "every domain".to_string()
                } else {
                    domains.join(", ")
                },
                path.display()
            );
            Ok(())
        }
        UserCommand::Del { name } => {
            auth::delete_user(path, &name)?;
            println!("{name}: removed from {}", path.display());
            Ok(())
        }
    }
}

/// At least 10 characters; asked twice on a terminal, else stdin's first line.
fn read_password(name: &str) -> Result<String, WebCommandError> {
    let password = if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("Password for {name}: "))
            .map_err(WebCommandError::ReadPassword)?;
        let again = rpassword::prompt_password("Again: ").map_err(WebCommandError::ReadPassword)?;
        if p != again {
            return Err(WebCommandError::PasswordsDiffer);
        }
        p
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .take_line(&mut line)
            .map_err(WebCommandError::ReadPasswordStdin)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.chars().count() < 10 {
        return Err(WebCommandError::PasswordTooShort);
    }
    Ok(password)
}

trait TakeLine {
    fn take_line(&mut self, out: &mut String) -> std::io::Result<usize>;
}

impl<R: BufRead> TakeLine for R {
    /// One line of at most 4 KiB.
    fn take_line(&mut self, out: &mut String) -> std::io::Result<usize> {
        use std::io::Read;
        self.by_ref().take(4096).read_line(out)
    }
}

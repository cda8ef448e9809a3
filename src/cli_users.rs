//! `flexiproxy user …`: panel accounts in the users file. Passwords are read from the
//! terminal without echo (asked twice), or as one line from standard input when it is not a
//! terminal (scripts: `echo "$PW" | flexiproxy user add alice`); never from the command line,
//! where `ps` and shell history would keep them.

use clap::Subcommand;
use flexiproxy::config::accounts::QuotaFile;
use flexiproxy::config::server::ServerConfig;
use flexiproxy::config::users;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a panel user (the password is prompted for, or read from standard input).
    Add {
        name: String,
        /// May see and change every adapter, and users' caps.
        #[arg(long)]
        admin: bool,
        /// How many adapters the user may own (default 5).
        #[arg(long)]
        max_adapters: Option<usize>,
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
    /// Change a user's password.
    Passwd {
        name: String,
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
    /// Change a user's cap, admin flag, status (approve a sign-up: `--status active`) or quota.
    Set {
        name: String,
        #[arg(long)]
        max_adapters: Option<usize>,
        #[arg(long)]
        admin: Option<bool>,
        /// `active`, `pending` or `disabled` (a disabled user's panel sessions end at once).
        #[arg(long, value_parser = ["active", "pending", "disabled"])]
        status: Option<String>,
        /// The user's own quota, in place of `accounts.default_quota`:
        /// `requests_per_day=2000,tokens_per_month=50000000,cost_per_month=20` (those given),
        /// `unlimited`, or `default` (back to the default quota).
        #[arg(long)]
        quota: Option<String>,
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
    /// Delete a user (their adapters stay, visible to admins).
    Delete {
        name: String,
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
    /// List users (names, roles, caps; never a hash).
    List {
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn users_file(config: &std::path::Path) -> Result<PathBuf, String> {
    Ok(ServerConfig::load(config)
        .map_err(|e| e.to_string())?
        .users_file)
}

pub fn run(cmd: UserCommand) -> Result<(), String> {
    match cmd {
        UserCommand::Add {
            name,
            admin,
            max_adapters,
            config,
        } => {
            let path = users_file(&config)?;
            let password = read_password()?;
            users::add(&path, &name, &password, admin, max_adapters).map_err(|e| e.to_string())?;
            println!("Added user `{name}` to {}.", path.display());
        }
        UserCommand::Passwd { name, config } => {
            let path = users_file(&config)?;
            let password = read_password()?;
            users::update(&path, &name, Some(&password), None, None).map_err(|e| e.to_string())?;
            println!("Changed the password of `{name}`.");
        }
        UserCommand::Set {
            name,
            max_adapters,
            admin,
            status,
            quota,
            config,
        } => {
            let path = users_file(&config)?;
            let quota = quota
                .as_deref()
                .map(QuotaFile::parse_spec)
                .transpose()
                .map_err(|e| format!("--quota: {e}"))?;
            users::update(&path, &name, None, admin, max_adapters).map_err(|e| e.to_string())?;
            let status = match status.as_deref() {
                Some("active") => Some(users::UserStatus::Active),
                Some("pending") => Some(users::UserStatus::Pending),
                Some(_) => Some(users::UserStatus::Disabled),
                None => None,
            };
            if let Some(status) = status {
                users::edit(&path, &name, |u| u.status = status).map_err(|e| e.to_string())?;
            }
            if let Some(quota) = quota {
                users::edit(&path, &name, |u| u.quota = quota).map_err(|e| e.to_string())?;
            }
            println!("Updated user `{name}`.");
        }
        UserCommand::Delete { name, config } => {
            let path = users_file(&config)?;
            users::delete(&path, &name).map_err(|e| e.to_string())?;
            println!("Deleted user `{name}`.");
        }
        UserCommand::List { config } => {
            let path = users_file(&config)?;
            let store = users::UsersStore::open(&path);
            println!("{:<24} {:<6} {:<9} MAX_ADAPTERS", "NAME", "ADMIN", "STATUS");
            for u in &store.current().users {
                let status = u.status.as_str();
                println!(
                    "{:<24} {:<6} {status:<9} {}",
                    u.name, u.admin, u.max_adapters
                );
            }
        }
    }
    Ok(())
}

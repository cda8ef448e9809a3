//! `flexiproxy user …`: panel accounts in the users file. Passwords are read from the
//! terminal without echo (asked twice), or as one line from standard input when it is not a
//! terminal (scripts: `echo "$PW" | flexiproxy user add alice`); never from the command line,
//! where `ps` and shell history would keep them. Each change is audited (`cli_audit`).

use crate::cli_audit;
use clap::Subcommand;
use flexiproxy::config::accounts::QuotaFile;
use flexiproxy::config::server::ServerConfig;
use flexiproxy::config::{resets, users};
use flexiproxy::telemetry::audit::Kind;
use std::io::{BufRead, IsTerminal};
use std::net::{Ipv4Addr, Ipv6Addr};
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
    /// Make a one-time link (valid 24 hours) for a user to set a new password, as the
    /// panel's users page does; printed once. It points at `accounts.panel_url`, else at the
    /// admin listener's address.
    ResetLink {
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

fn load(config: &std::path::Path) -> Result<ServerConfig, String> {
    ServerConfig::load(config).map_err(|e| e.to_string())
}

/// Where a reset link points: `accounts.panel_url`, else the admin listener (an unspecified
/// address as loopback; `https` when the listener has TLS).
fn panel_base(server: &ServerConfig) -> Result<String, String> {
    if let Some(url) = &server.accounts.sso.panel_url {
        return Ok(url.clone());
    }
    let admin = server.admin.as_ref().ok_or(
        "the admin listener is off (`admin.enabled: false`): no panel would open the link",
    )?;
    let mut address = admin.address;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            std::net::SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if admin.tls.is_some() { "https" } else { "http" };
    Ok(format!("{scheme}://{address}"))
}

pub fn run(cmd: UserCommand) -> Result<(), String> {
    match cmd {
        UserCommand::Add {
            name,
            admin,
            max_adapters,
            config,
        } => {
            let server = load(&config)?;
            let path = &server.users_file;
            let password = read_password()?;
            users::add(path, &name, &password, admin, max_adapters).map_err(|e| e.to_string())?;
            println!("Added user `{name}` to {}.", path.display());
            cli_audit::record(&server, Kind::UserAdd, &name, format!("admin={admin}"));
        }
        UserCommand::Passwd { name, config } => {
            let server = load(&config)?;
            let password = read_password()?;
            users::update(&server.users_file, &name, Some(&password), None, None)
                .map_err(|e| e.to_string())?;
            println!("Changed the password of `{name}`.");
            cli_audit::record(&server, Kind::PasswordChange, &name, "");
        }
        UserCommand::Set {
            name,
            max_adapters,
            admin,
            status,
            quota,
            config,
        } => {
            let server = load(&config)?;
            let path = &server.users_file;
            let quota = quota
                .as_deref()
                .map(QuotaFile::parse_spec)
                .transpose()
                .map_err(|e| format!("--quota: {e}"))?;
            users::update(path, &name, None, admin, max_adapters).map_err(|e| e.to_string())?;
            let status = match status.as_deref() {
                Some("active") => Some(users::UserStatus::Active),
                Some("pending") => Some(users::UserStatus::Pending),
                Some(_) => Some(users::UserStatus::Disabled),
                None => None,
            };
            if let Some(status) = status {
                users::edit(path, &name, |u| u.status = status).map_err(|e| e.to_string())?;
            }
            if let Some(quota) = quota {
                users::edit(path, &name, |u| u.quota = quota).map_err(|e| e.to_string())?;
            }
            println!("Updated user `{name}`.");
            // One entry per change, as the panel records them.
            let changes = [
                admin.map(|a| format!("admin={a}")),
                status.map(|s| format!("status={}", s.as_str())),
                max_adapters.map(|m| format!("max_adapters={m}")),
            ];
            for detail in changes.into_iter().flatten() {
                cli_audit::record(&server, Kind::UserChange, &name, detail);
            }
            if let Some(quota) = quota {
                let spec = quota.map_or("default".to_owned(), |q| q.spec());
                cli_audit::record(&server, Kind::QuotaSet, &name, spec);
            }
        }
        UserCommand::Delete { name, config } => {
            let server = load(&config)?;
            users::delete(&server.users_file, &name).map_err(|e| e.to_string())?;
            println!("Deleted user `{name}`.");
            cli_audit::record(&server, Kind::UserDelete, &name, "");
        }
        UserCommand::ResetLink { name, config } => {
            let server = load(&config)?;
            let base = panel_base(&server)?;
            if users::read_or_empty(&server.users_file)
                .get(&name)
                .is_none()
            {
                return Err(format!(
                    "no user `{name}` in {}",
                    server.users_file.display()
                ));
            }
            let path = resets::path_for(&server.users_file);
            let (token, expires) =
                resets::create(&path, &name, cli_audit::ACTOR).map_err(|e| e.to_string())?;
            println!("{base}/reset/{token}");
            eprintln!(
                "A one-time link for `{name}` to set a new password, valid until {expires} \
                 (shown once; only its hash is kept in {}). Their earlier links no longer work.",
                path.display()
            );
            cli_audit::record(
                &server,
                Kind::PasswordResetLink,
                &name,
                format!("expires={expires}"),
            );
        }
        UserCommand::List { config } => {
            let path = load(&config)?.users_file;
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

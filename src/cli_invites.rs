//! `flexiproxy invite …`: sign-up invitation codes (issue #27) in `invites.yaml` next to the
//! users file, the same file the panel's users page and `/admin/api/invites` manage. A new
//! code is printed once; only its SHA-256 is kept. Making and revoking one is audited
//! (`cli_audit`; the entry names the invitation's id, never its code).

use crate::cli_audit;
use clap::Subcommand;
use flexiproxy::config::invites;
use flexiproxy::config::server::ServerConfig;
use flexiproxy::telemetry::audit::Kind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Subcommand)]
pub enum InviteCommand {
    /// Make a code for sign-up (`accounts.registration: invite`); printed once.
    Create {
        /// How many sign-ups the code admits.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it stays valid (e.g. 12h, 7d, 30d).
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        expires: Duration,
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
    /// List codes (id, uses left, expiry; never a code).
    List {
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
    /// Revoke a code by its id (from `invite list`).
    Revoke {
        id: String,
        #[arg(long, default_value = "conf/flexiproxy.yaml")]
        config: PathBuf,
    },
}

/// The server config and its invitations file.
fn invites_file(config: &Path) -> Result<(ServerConfig, PathBuf), String> {
    let server = ServerConfig::load(config).map_err(|e| e.to_string())?;
    let path = invites::path_for(&server.users_file);
    Ok((server, path))
}

pub fn run(cmd: InviteCommand) -> Result<(), String> {
    match cmd {
        InviteCommand::Create {
            uses,
            expires,
            config,
        } => {
            let (server, path) = invites_file(&config)?;
            let (code, invite) =
                invites::create(&path, uses, expires, None).map_err(|e| e.to_string())?;
            println!("{code}");
            eprintln!(
                "Invitation {} for {uses} sign-up(s), valid until {} (shown once; only its hash is kept in {}).",
                invite.id,
                invite.expires,
                path.display()
            );
            let detail = format!("uses={uses} expires={}", invite.expires);
            cli_audit::record(&server, Kind::InviteCreate, &invite.id, detail);
        }
        InviteCommand::List { config } => {
            let (_, path) = invites_file(&config)?;
            let file = invites::read(&path).map_err(|e| e.to_string())?;
            let now = SystemTime::now();
            println!("{:<14} {:<9} {:<22} USABLE", "ID", "USES_LEFT", "EXPIRES");
            for i in &file.invites {
                println!(
                    "{:<14} {:<9} {:<22} {}",
                    i.id,
                    i.uses_left,
                    i.expires,
                    i.usable(now)
                );
            }
        }
        InviteCommand::Revoke { id, config } => {
            let (server, path) = invites_file(&config)?;
            invites::revoke(&path, &id).map_err(|e| e.to_string())?;
            println!("Revoked invitation {id}.");
            cli_audit::record(&server, Kind::InviteRevoke, &id, "");
        }
    }
    Ok(())
}

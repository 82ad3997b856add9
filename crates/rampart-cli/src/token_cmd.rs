//! `rampart token show|rotate`.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;

use rampart_server::client;

use crate::{Outcome, home};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print the admin token (creating it if no server has yet)
    Show,
    /// Replace the token; a running server switches to the new one
    Rotate,
}

pub fn run(command: TokenCommand) -> Result<Outcome> {
    let home = home::dir()?;
    match command {
        TokenCommand::Show => {
            home::create_private_dir(&home)?;
            let token = rampart_server::token::ensure(&home).with_context(|| {
                format!("reading {}", rampart_server::token::path(&home).display())
            })?;
            outln!("{token}");
        }
        TokenCommand::Rotate => {
            home::create_private_dir(&home)?;
            let old = rampart_server::token::read(&home).ok();
            let new = rampart_server::token::generate().context("generating a token")?;
            rampart_server::token::write(&home, &new).with_context(|| {
                format!("writing {}", rampart_server::token::path(&home).display())
            })?;
            // A running server re-reads the token on reload; ask it with the old one.
            let endpoint = home::endpoint(&home, None)?;
            let told = old.as_deref().is_some_and(|old| {
                client::request(
                    &endpoint,
                    "POST",
                    "/v1/policy/reload",
                    Some(old),
                    Some(&serde_json::json!({})),
                    Duration::from_secs(10),
                )
                .is_ok_and(|r| r.status == 200 || r.status == 422)
            });
            outln!("{new}");
            if told {
                eprintln!("rampart: the running server now uses the new token");
            }
        }
    }
    Ok(Outcome::Success)
}

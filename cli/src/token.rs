//! `stockfleet token create|list|revoke`: API tokens for the REST API and
//! the dashboard.

use std::process::ExitCode;
use stockfleet::admin::tokens::{self, Role};
use stockfleet::config::Settings;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a token; it is printed once and cannot be read again.
    Create {
        /// Who holds it: recorded as the actor of their changes.
        #[arg(long)]
        name: String,
        /// viewer (read), operator (also correct stock, sync, replay), admin (also purge).
        #[arg(long, default_value = "viewer", value_parser = str::parse::<Role>)]
        role: Role,
        /// Limit the token to this marketplace (repeat for several); without
        /// it the token sees every marketplace.
        #[arg(long = "marketplace")]
        marketplaces: Vec<String>,
    },
    /// Every token, active and revoked (never the token itself).
    List,
    /// Revoke the active token with this name; it stops working at once.
    Revoke { name: String },
}

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<ExitCode> {
    let pool = crate::connect::database(settings, 2).await?;
    match command {
        Command::Create {
            name,
            role,
            marketplaces,
        } => {
            let token = tokens::create_scoped(&pool, &name, role, &marketplaces).await?;
            let scope = scope(&Some(marketplaces).filter(|codes| !codes.is_empty()));
            eprintln!("token {name:?} ({role}, {scope}) created; it is shown only now:");
            println!("{token}");
        }
        Command::List => {
            println!(
                "{:<5} {:<20} {:<9} {:<24} {:<20} {:<20} revoked",
                "id", "name", "role", "marketplaces", "created", "last used"
            );
            let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "-".into())
            };
            for token in tokens::list(&pool).await? {
                println!(
                    "{:<5} {:<20} {:<9} {:<24} {:<20} {:<20} {}",
                    token.id,
                    token.name,
                    token.role,
                    scope(&token.marketplaces),
                    at(Some(token.created_at)),
                    at(token.last_used_at),
                    at(token.revoked_at)
                );
            }
        }
        Command::Revoke { name } => {
            tokens::revoke(&pool, &name).await?;
            println!("token {name:?} revoked");
        }
    }
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A token's marketplaces as `token list` shows them.
fn scope(marketplaces: &Option<Vec<String>>) -> String {
    marketplaces
        .as_ref()
        .map_or_else(|| "all marketplaces".to_owned(), |codes| codes.join(","))
}

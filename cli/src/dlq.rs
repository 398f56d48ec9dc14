//! `stockfleet dlq list|show|replay|purge`.

use std::process::ExitCode;
use stockfleet::admin::dlq::{self, DeadLetter, Filter};
use stockfleet::config::Settings;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Dead letters, one line each.
    List(Filters),
    /// One dead letter in full: headers and body.
    Show {
        message_id: String,
        #[command(flatten)]
        filters: Filters,
    },
    /// Put dead letters back on the queue that dead-lettered them, attempts reset.
    Replay {
        #[command(flatten)]
        filters: Filters,
        /// Say what would move, move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete dead letters.
    Purge {
        #[command(flatten)]
        filters: Filters,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
pub struct Filters {
    /// Consumer queue without the prefix: locker, reducer, poller, publisher.<marketplace>.
    #[arg(long)]
    queue: Option<String>,
    #[arg(long)]
    marketplace: Option<String>,
    /// transient or permanent.
    #[arg(long, value_parser = dlq::KINDS)]
    kind: Option<String>,
    /// Last failed at least this long ago (30s, 10m, 2h, 1d).
    #[arg(long, value_parser = dlq::parse_age)]
    older_than: Option<std::time::Duration>,
    /// Last failed at most this long ago.
    #[arg(long, value_parser = dlq::parse_age)]
    newer_than: Option<std::time::Duration>,
    /// At most this many (the first found).
    #[arg(long)]
    limit: Option<usize>,
    /// Only this message (its message id, as `dlq list` shows it); repeat for several.
    #[arg(long = "id", value_name = "MESSAGE_ID")]
    ids: Vec<String>,
}

impl Filters {
    fn filter(mut self, message_id: Option<String>) -> Filter {
        self.ids.extend(message_id);
        Filter {
            queue: self.queue,
            marketplace: self.marketplace,
            kind: self.kind,
            older_than: self.older_than,
            newer_than: self.newer_than,
            message_ids: self.ids,
            limit: self.limit,
            // The CLI is the operator at the database: every marketplace.
            scope: Default::default(),
        }
    }
}

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<ExitCode> {
    let (bus, marketplaces) = crate::connect_bus(settings).await?;
    let code = match command {
        Command::List(filters) => {
            let letters = dlq::list(&bus, &marketplaces, &filters.filter(None)).await?;
            print_lines(&letters);
            println!("{} dead letter(s)", letters.len());
            ExitCode::SUCCESS
        }
        Command::Show {
            message_id,
            filters,
        } => {
            let letters = dlq::list(&bus, &marketplaces, &filters.filter(Some(message_id))).await?;
            for letter in &letters {
                println!("{}", serde_json::to_string_pretty(letter)?);
            }
            if letters.is_empty() {
                eprintln!("no such dead letter");
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Replay { filters, dry_run } => {
            let moved = dlq::replay(&bus, &marketplaces, &filters.filter(None), dry_run).await?;
            print_lines(&moved);
            let verb = if dry_run {
                "would be replayed"
            } else {
                "replayed"
            };
            println!("{} dead letter(s) {verb}", moved.len());
            ExitCode::SUCCESS
        }
        Command::Purge { filters, dry_run } => {
            let gone = dlq::purge(&bus, &marketplaces, &filters.filter(None), dry_run).await?;
            print_lines(&gone);
            let verb = if dry_run { "would be purged" } else { "purged" };
            println!("{} dead letter(s) {verb}", gone.len());
            ExitCode::SUCCESS
        }
    };
    bus.close().await;
    Ok(code)
}

fn print_lines(letters: &[DeadLetter]) {
    for letter in letters {
        println!(
            "{}  {}  {}  {} ({}, {} attempt(s), last {}): {}",
            letter.queue,
            letter.message_id,
            letter.routing_key,
            letter.kind,
            letter.error_kind,
            letter.attempts,
            letter.last_failure.as_deref().unwrap_or("-"),
            letter.error
        );
    }
}

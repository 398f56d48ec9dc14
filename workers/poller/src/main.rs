//! stockfleet-poller: starts, serves health and shuts down cleanly; its own work
//! arrives with its issue.

fn main() -> std::process::ExitCode {
    stockfleet::worker::main("poller", 9101, stockfleet::worker::idle)
}

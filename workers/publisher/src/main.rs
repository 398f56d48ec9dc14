//! stockfleet-publisher: starts, serves health and shuts down cleanly; its own work
//! arrives with its issue.

fn main() -> std::process::ExitCode {
    stockfleet::worker::main("publisher", 9104, stockfleet::worker::idle)
}

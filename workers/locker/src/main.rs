//! stockfleet-locker: applies order events to the stock ledger (see `stockfleet::ledger`).

use stockfleet::ledger::{self, Role};

fn main() -> std::process::ExitCode {
    stockfleet::worker::main("locker", 9102, |worker| ledger::run(worker, Role::Locker))
}

//! stockfleet-reducer: applies order events to the stock ledger (see `stockfleet::ledger`).

use stockfleet::ledger::{self, Role};

fn main() -> std::process::ExitCode {
    stockfleet::worker::main("reducer", 9103, |worker| ledger::run(worker, Role::Reducer))
}

//! stockfleet-poller: order syncs for every marketplace, on schedule and on
//! request (see `stockfleet::poller`).

fn main() -> std::process::ExitCode {
    stockfleet::worker::main("poller", 9101, stockfleet::poller::run_worker)
}

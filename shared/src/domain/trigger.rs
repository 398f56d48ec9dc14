//! Why a sync run (orders or stock) starts, as `sync_runs.trigger` records it.

/// Why a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    /// `stockfleet sync`, inline.
    Manual,
    /// A `sync.<mp>.<type>` command on the bus.
    Fleet,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Fleet => "fleet",
        }
    }
}

//! The order syncs the poller runs and what a sync request may name.

use std::fmt;

/// The order syncs the poller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncType {
    New,
    Modified,
    Care,
    Incomplete,
}

impl SyncType {
    pub const ALL: [SyncType; 4] = [
        SyncType::New,
        SyncType::Modified,
        SyncType::Care,
        SyncType::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncType::New => "new",
            SyncType::Modified => "modified",
            SyncType::Care => "care",
            SyncType::Incomplete => "incomplete",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        SyncType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Second key of the run's PostgreSQL advisory lock (the first is the marketplace id).
    pub(super) fn lock_key(self) -> i32 {
        match self {
            SyncType::New => 1,
            SyncType::Modified => 2,
            SyncType::Care => 3,
            SyncType::Incomplete => 4,
        }
    }
}

impl fmt::Display for SyncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sync request (`stockfleet sync`, `sync.<mp>.<type>`, the API) names:
/// one of the poller's order syncs, or the publisher's stock reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Orders(SyncType),
    Stock,
}

impl SyncKind {
    /// The names [`SyncKind::select`] takes, for error messages.
    pub const CHOICES: &str = "new, modified, care, incomplete, stock or all";
    const STOCK: &str = "stock";

    pub fn name(self) -> &'static str {
        match self {
            SyncKind::Orders(sync_type) => sync_type.as_str(),
            SyncKind::Stock => Self::STOCK,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            Self::STOCK => Some(SyncKind::Stock),
            name => SyncType::parse(name).map(SyncKind::Orders),
        }
    }

    /// One kind by name, or every kind for `all`.
    pub fn select(name: &str) -> Option<Vec<Self>> {
        match name {
            "all" => Some(
                SyncType::ALL
                    .into_iter()
                    .map(SyncKind::Orders)
                    .chain([SyncKind::Stock])
                    .collect(),
            ),
            name => Self::parse(name).map(|kind| vec![kind]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_requests_name_one_kind_or_all() {
        assert_eq!(
            SyncKind::select("new"),
            Some(vec![SyncKind::Orders(SyncType::New)])
        );
        assert_eq!(SyncKind::select("stock"), Some(vec![SyncKind::Stock]));
        let all = SyncKind::select("all").unwrap();
        let names: Vec<&str> = all.iter().map(|kind| kind.name()).collect();
        assert_eq!(names, ["new", "modified", "care", "incomplete", "stock"]);
        assert!(
            all.iter()
                .all(|kind| SyncKind::parse(kind.name()) == Some(*kind))
        );
        assert_eq!(SyncKind::select("weekly"), None);
    }
}

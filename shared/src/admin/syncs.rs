//! Read models of the order and stock syncs: the status board (the latest
//! run of every marketplace and type) and the runs, filtered, sorted and
//! paginated, over the marketplaces a caller sees.

use super::page::Page;
use crate::domain::listing::{self, Direction, Refused, Window, choice, given};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct SyncRunView {
    pub id: i64,
    pub marketplace: String,
    /// new, modified, care, incomplete or stock.
    pub sync_type: String,
    /// schedule, manual or fleet.
    pub trigger: String,
    /// running, succeeded, partial or failed.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub fetched: i32,
    pub created: i32,
    pub updated: i32,
    pub errors: i32,
    pub duration_ms: Option<i64>,
    pub error_text: Option<String>,
    /// When this (marketplace, type) last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
}

const SYNC_RUN_COLUMNS: &str = "r.id, m.code AS marketplace, r.sync_type, r.trigger, r.status,
    r.started_at, r.finished_at, r.fetched, r.created, r.updated, r.errors, r.duration_ms,
    r.error_text,
    (SELECT max(ok.started_at) FROM sync_runs ok WHERE ok.marketplace_id = r.marketplace_id
       AND ok.sync_type = r.sync_type AND ok.status = 'succeeded') AS last_success_at";

/// The latest run of every (marketplace, sync type) of these marketplaces:
/// the sync status board.
pub async fn sync_status(pool: &PgPool, marketplaces: &[String]) -> sqlx::Result<Vec<SyncRunView>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT ON (m.code, r.sync_type) {SYNC_RUN_COLUMNS}
         FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
         WHERE m.code = ANY($1)
         ORDER BY m.code, r.sync_type, r.started_at DESC, r.id DESC"
    )))
    .bind(marketplaces)
    .fetch_all(pool)
    .await
}

pub const SYNC_TYPES: [&str; 5] = ["new", "modified", "care", "incomplete", "stock"];
pub const RUN_STATUSES: [&str; 4] = ["running", "succeeded", "partial", "failed"];
/// What runs can be sorted by (`sort=`), each with its SQL.
const SORTS: [(&str, &str); 4] = [
    ("started", "r.started_at"),
    ("finished", "r.finished_at"),
    ("duration", "r.duration_ms"),
    ("marketplace", "m.code"),
];

/// Which runs; an empty filter means any.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SyncRunQuery {
    pub marketplace: Option<String>,
    /// new, modified, care, incomplete or stock.
    #[param(pattern = "^(new|modified|care|incomplete|stock)?$")]
    pub sync_type: Option<String>,
    /// running, succeeded, partial or failed.
    #[param(pattern = "^(running|succeeded|partial|failed)?$")]
    pub status: Option<String>,
    /// started (the default), finished, duration or marketplace.
    #[param(pattern = "^(started|finished|duration|marketplace)?$")]
    pub sort: Option<String>,
    /// asc or desc (the default).
    #[param(pattern = "^(asc|desc)?$")]
    pub order: Option<String>,
    /// Rows per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A run query with every value checked.
pub struct RunFilter {
    marketplaces: Vec<String>,
    sync_type: Option<&'static str>,
    status: Option<&'static str>,
    sort: &'static str,
    direction: Direction,
    pub window: Window,
}

impl SyncRunQuery {
    /// Checks every filter against the known values and the marketplaces
    /// the caller sees (`visible`).
    pub fn check(&self, visible: &[String]) -> Result<RunFilter, Refused> {
        let sort_names: Vec<&str> = SORTS.iter().map(|(name, _)| *name).collect();
        let sort = match given(&self.sort) {
            None => "started",
            Some(text) => choice("sort", text, &sort_names)?,
        };
        Ok(RunFilter {
            marketplaces: listing::marketplaces(&self.marketplace, visible)?,
            sync_type: given(&self.sync_type)
                .map(|text| choice("sync_type", text, &SYNC_TYPES))
                .transpose()?,
            status: given(&self.status)
                .map(|text| choice("status", text, &RUN_STATUSES))
                .transpose()?,
            sort: SORTS
                .iter()
                .find(|(name, _)| *name == sort)
                .map(|(_, sql)| *sql)
                .unwrap_or("r.started_at"),
            direction: Direction::parse(&self.order, Direction::Desc)?,
            window: Window::new(self.limit, self.offset)?,
        })
    }
}

/// Runs matching the filter, one page, with the total.
pub async fn sync_runs(pool: &PgPool, filter: &RunFilter) -> sqlx::Result<Page<SyncRunView>> {
    const WHERE: &str = "m.code = ANY($1) AND ($2::text IS NULL OR r.sync_type = $2)
        AND ($3::text IS NULL OR r.status = $3)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
         WHERE {WHERE}"
    )))
    .bind(&filter.marketplaces)
    .bind(filter.sync_type)
    .bind(filter.status)
    .fetch_one(pool)
    .await?;
    let (sort, direction) = (filter.sort, filter.direction.sql());
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SYNC_RUN_COLUMNS}
         FROM sync_runs r JOIN marketplaces m ON m.id = r.marketplace_id
         WHERE {WHERE}
         ORDER BY {sort} {direction} NULLS LAST, r.id {direction} LIMIT $4 OFFSET $5"
    )))
    .bind(&filter.marketplaces)
    .bind(filter.sync_type)
    .bind(filter.status)
    .bind(filter.window.limit)
    .bind(filter.window.offset)
    .fetch_all(pool)
    .await?;
    Ok(Page::new(filter.window, total, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_filter_value_is_checked() {
        let visible = vec!["backmarket".to_owned()];
        let query = |edit: fn(&mut SyncRunQuery)| {
            let mut query = SyncRunQuery::default();
            edit(&mut query);
            query.check(&visible).err().map(|error| error.to_string())
        };
        assert_eq!(query(|_| {}), None);
        assert_eq!(query(|q| q.sync_type = Some(String::new())), None);
        assert!(
            query(|q| q.sync_type = Some("news".into()))
                .unwrap()
                .contains("\"news\"")
        );
        assert!(
            query(|q| q.status = Some("ok".into()))
                .unwrap()
                .contains("\"ok\"")
        );
        assert!(
            query(|q| q.sort = Some("id".into()))
                .unwrap()
                .contains("\"id\"")
        );
        assert!(query(|q| q.marketplace = Some("refurbed".into())).is_some());
        assert!(query(|q| q.limit = Some(501)).is_some());
    }
}

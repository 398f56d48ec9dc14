//! One page of a list, with where it starts and how many rows match in all,
//! so a client can reach every row (see [`crate::domain::listing::Window`]).

use crate::domain::listing::Window;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// Rows matching the filters, over every page.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub items: Vec<T>,
}

impl<T> Page<T> {
    pub fn new(window: Window, total: i64, items: Vec<T>) -> Self {
        Self {
            total,
            limit: window.limit,
            offset: window.offset,
            items,
        }
    }

    /// The window's slice of rows already read whole (a dead-letter walk).
    pub fn of_all(window: Window, all: Vec<T>) -> Self {
        let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
        let start = usize::try_from(window.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(window.limit).unwrap_or(usize::MAX);
        let items = all.into_iter().skip(start).take(limit).collect();
        Self::new(window, total, items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_rows_read_whole_keeps_the_total() {
        let window = Window {
            limit: 2,
            offset: 3,
        };
        let page = Page::of_all(window, (0..6).collect());
        assert_eq!((page.total, page.items), (6, vec![3, 4]));
        let past = Page::of_all(
            Window {
                limit: 2,
                offset: 9,
            },
            vec![1],
        );
        assert_eq!((past.total, past.items.len()), (1, 0));
    }
}

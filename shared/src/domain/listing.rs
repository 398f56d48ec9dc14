//! How a list is asked for: a window (`limit`, `offset`), a sort and its
//! direction, filters naming one of known values. An empty filter means
//! "any"; an unknown value is refused with the value named, never read as
//! "any" or as a default.

use super::input::Invalid;

/// Rows a list returns when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most rows one page may hold.
pub const MAX_LIMIT: i64 = 500;

/// A value that is none of the known ones (answered 400 over HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unknown(pub Invalid);

/// A list query refused: an unknown value (400 over HTTP) or a number out
/// of its range (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Unknown(#[from] Unknown),
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// Which rows of a list: at most `limit` from `offset` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: i64,
    pub offset: i64,
}

impl Window {
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, Invalid> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Invalid::new(
                "limit",
                format!("{limit} is outside 1 to {MAX_LIMIT} rows per page"),
            ));
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(Invalid::new("offset", format!("{offset} is below 0")));
        }
        Ok(Self { limit, offset })
    }
}

impl Default for Window {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// A filter's value: `None` for a missing or empty one (any), else the text.
pub fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// `value` if it is one of `choices`, else a refusal naming it and them.
pub fn choice<'a>(field: &str, value: &str, choices: &[&'a str]) -> Result<&'a str, Unknown> {
    choices
        .iter()
        .find(|choice| **choice == value)
        .copied()
        .ok_or_else(|| {
            Unknown(Invalid::new(
                field,
                format!("unknown {field} {value:?}; use {}", choices.join(", ")),
            ))
        })
}

/// The marketplaces a list covers: the one its filter names (which must be
/// among those the caller sees), or every one the caller sees.
pub fn marketplaces(filter: &Option<String>, visible: &[String]) -> Result<Vec<String>, Unknown> {
    match given(filter) {
        None => Ok(visible.to_vec()),
        Some(code) => {
            let known: Vec<&str> = visible.iter().map(String::as_str).collect();
            Ok(vec![choice("marketplace", code, &known)?.to_owned()])
        }
    }
}

/// A substring match for LIKE, its wildcards taken literally.
pub fn like_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    pub const CHOICES: [&'static str; 2] = ["asc", "desc"];

    /// `order=asc|desc`; `default` when it is missing or empty.
    pub fn parse(value: &Option<String>, default: Direction) -> Result<Self, Unknown> {
        match given(value) {
            None => Ok(default),
            Some(text) => match choice("order", text, &Self::CHOICES)? {
                "asc" => Ok(Direction::Asc),
                _ => Ok(Direction::Desc),
            },
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_bounded_and_defaults_to_the_first_page() {
        assert_eq!(Window::new(None, None), Ok(Window::default()));
        assert_eq!(
            Window::new(Some(500), Some(1000)),
            Ok(Window {
                limit: 500,
                offset: 1000
            })
        );
        assert_eq!(Window::new(Some(0), None).unwrap_err().field, "limit");
        assert_eq!(Window::new(Some(501), None).unwrap_err().field, "limit");
        assert_eq!(Window::new(None, Some(-1)).unwrap_err().field, "offset");
    }

    #[test]
    fn a_search_takes_wildcards_literally() {
        assert_eq!(like_pattern("A-1"), "%A-1%");
        assert_eq!(like_pattern("50%_\\"), "%50\\%\\_\\\\%");
    }

    #[test]
    fn an_empty_filter_means_any() {
        assert_eq!(given(&None), None);
        assert_eq!(given(&Some(String::new())), None);
        assert_eq!(given(&Some("  ".into())), None);
        assert_eq!(given(&Some("woocommerce".into())), Some("woocommerce"));
    }

    #[test]
    fn an_unknown_choice_is_refused_with_its_value() {
        assert_eq!(
            choice("sort", "placed", &["placed", "updated"]),
            Ok("placed")
        );
        let refused = choice("sort", "price", &["placed", "updated"]).unwrap_err();
        assert_eq!(refused.0.field, "sort");
        assert!(
            refused.0.reason.contains("\"price\""),
            "{}",
            refused.0.reason
        );
        assert_eq!(
            Direction::parse(&Some("asc".into()), Direction::Desc),
            Ok(Direction::Asc)
        );
        assert_eq!(
            Direction::parse(&None, Direction::Desc),
            Ok(Direction::Desc)
        );
        assert!(Direction::parse(&Some("up".into()), Direction::Desc).is_err());
    }

    #[test]
    fn a_marketplace_filter_stays_inside_what_the_caller_sees() {
        let visible = vec!["woocommerce".to_owned(), "refurbed".to_owned()];
        assert_eq!(marketplaces(&None, &visible), Ok(visible.clone()));
        assert_eq!(
            marketplaces(&Some(String::new()), &visible),
            Ok(visible.clone())
        );
        assert_eq!(
            marketplaces(&Some("refurbed".into()), &visible),
            Ok(vec!["refurbed".to_owned()])
        );
        let hidden = marketplaces(&Some("backmarket".into()), &visible).unwrap_err();
        assert_eq!(hidden.0.field, "marketplace");
    }
}

//! Which marketplaces a caller may see. A token may be limited to some
//! marketplaces (a shop team that runs only WooCommerce); every read model
//! and action takes the caller's scope, so rows of other marketplaces are
//! invisible and their single-item paths answer 404.

use serde::Serialize;

/// The marketplaces a caller may see: all of them, or the listed codes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// `None`: every marketplace.
    marketplaces: Option<Vec<String>>,
}

impl Scope {
    /// Every marketplace (a token without a marketplace list).
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these marketplace codes.
    pub fn only(codes: Vec<String>) -> Self {
        Self {
            marketplaces: Some(codes),
        }
    }

    /// Whether rows of this marketplace are visible.
    pub fn sees(&self, marketplace: &str) -> bool {
        self.marketplaces
            .as_ref()
            .is_none_or(|codes| codes.iter().any(|code| code == marketplace))
    }

    /// The codes to bind into SQL as `$n::text[]`, used as
    /// `($n::text[] IS NULL OR m.code = ANY($n))`: `None` means every marketplace.
    pub fn codes(&self) -> Option<&[String]> {
        self.marketplaces.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unscoped_caller_sees_every_marketplace() {
        assert!(Scope::all().sees("refurbed"));
        assert_eq!(Scope::all().codes(), None);
    }

    #[test]
    fn a_scoped_caller_sees_only_its_marketplaces() {
        let scope = Scope::only(vec!["woocommerce".into()]);
        assert!(scope.sees("woocommerce"));
        assert!(!scope.sees("backmarket"));
        assert_eq!(scope.codes(), Some(&["woocommerce".to_owned()][..]));
    }
}

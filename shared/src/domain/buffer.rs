//! The safety buffer: how many of our available units a marketplace is shown.
//!
//! `shown = min(max_shown, available − reserve)`, where
//! `reserve = max(min_units, round(available × percentage / 100))` and never
//! less than zero. With the default rule (10 %, rounding the reserve up) this is
//! the design's `max(0, floor(available × 0.9))`: one unit in stock keeps one
//! unit back and shows 0; a seller who wants single units shown picks rounding
//! `down` (1 unit → reserve 0 → shows 1) or a lower percentage.

use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// How the percentage part of the reserve is rounded to whole units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Keep back at least the fraction: never show more than the percentage allows.
    #[default]
    Up,
    Down,
    Nearest,
}

impl FromStr for Rounding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "up" => Ok(Rounding::Up),
            "down" => Ok(Rounding::Down),
            "nearest" => Ok(Rounding::Nearest),
            other => Err(format!(
                "unknown buffer rounding {other:?} (up, down, nearest)"
            )),
        }
    }
}

/// A row's buffer rule, after marketplace defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BufferRule {
    /// Hundredths of a percent kept back (1000 = 10 %), 0..=10000.
    pub basis_points: u32,
    /// Units always kept back, whatever the percentage gives.
    pub min_units: u32,
    /// Never show more than this, to hide the true depth from competitors.
    pub max_shown: Option<u32>,
    pub rounding: Rounding,
}

impl Default for BufferRule {
    fn default() -> Self {
        Self {
            basis_points: 1000,
            min_units: 0,
            max_shown: None,
            rounding: Rounding::Up,
        }
    }
}

impl BufferRule {
    /// The quantity to push for `available` units (negative input counts as 0).
    pub fn buffered(&self, available: i32) -> u32 {
        let available = available.max(0) as u64;
        let bp = u64::from(self.basis_points.min(10_000));
        let scaled = available * bp;
        let percent_units = match self.rounding {
            Rounding::Up => scaled.div_ceil(10_000),
            Rounding::Down => scaled / 10_000,
            Rounding::Nearest => (scaled + 5_000) / 10_000,
        };
        let reserve = percent_units.max(u64::from(self.min_units));
        let shown = available.saturating_sub(reserve);
        let shown = match self.max_shown {
            Some(cap) => shown.min(u64::from(cap)),
            None => shown,
        };
        shown as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(bp: u32, rounding: Rounding) -> BufferRule {
        BufferRule {
            basis_points: bp,
            rounding,
            ..BufferRule::default()
        }
    }

    #[test]
    fn default_rule_is_floor_of_ninety_percent() {
        let rule = BufferRule::default();
        assert_eq!(rule.buffered(0), 0);
        assert_eq!(rule.buffered(1), 0);
        assert_eq!(rule.buffered(9), 8);
        assert_eq!(rule.buffered(10), 9);
        assert_eq!(rule.buffered(11), 9);
        assert_eq!(rule.buffered(100), 90);
        assert_eq!(rule.buffered(-3), 0);
    }

    #[test]
    fn rounding_down_shows_a_single_unit() {
        assert_eq!(rule(1000, Rounding::Down).buffered(1), 1);
        assert_eq!(rule(1000, Rounding::Nearest).buffered(5), 4);
        assert_eq!(rule(1000, Rounding::Nearest).buffered(4), 4);
    }

    #[test]
    fn min_units_and_cap_apply() {
        let rule = BufferRule {
            min_units: 2,
            max_shown: Some(5),
            ..BufferRule::default()
        };
        assert_eq!(rule.buffered(3), 1);
        assert_eq!(rule.buffered(2), 0);
        assert_eq!(rule.buffered(100), 5);
    }

    #[test]
    fn zero_and_full_buffers() {
        assert_eq!(rule(0, Rounding::Up).buffered(7), 7);
        assert_eq!(rule(10_000, Rounding::Down).buffered(7), 0);
    }

    #[test]
    fn unknown_rounding_is_rejected() {
        assert_eq!("down".parse(), Ok(Rounding::Down));
        assert!("sideways".parse::<Rounding>().is_err());
    }

    proptest! {
        #[test]
        fn never_shows_more_than_available_and_matches_the_design_formula(
            available in -5i32..100_000, bp in 0u32..=10_000,
        ) {
            let shown = rule(bp, Rounding::Up).buffered(available);
            prop_assert!(i64::from(shown) <= i64::from(available.max(0)));
            // design §4: max(0, floor(available × (1 − buffer/100)))
            let expected = (i64::from(available.max(0)) * (10_000 - i64::from(bp))) / 10_000;
            prop_assert_eq!(i64::from(shown), expected);
        }

        #[test]
        fn more_stock_never_shows_less(available in 0i32..100_000, bp in 0u32..=10_000, min in 0u32..10) {
            let rule = BufferRule { basis_points: bp, min_units: min, max_shown: None, rounding: Rounding::Nearest };
            prop_assert!(rule.buffered(available + 1) >= rule.buffered(available));
        }
    }
}

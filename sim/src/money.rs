//! Money as the marketplaces write it (decimal strings with two places),
//! summed in cents so that totals are exact.

use crate::state::{Item, Listing};
use std::collections::BTreeMap;

/// What a line costs when its SKU has no listing (an unmanaged SKU).
const UNLISTED_PRICE_CENTS: i64 = 19_900;

/// "299.25" → 29925; an unreadable price counts as the unlisted price.
fn cents(price: &str) -> i64 {
    let (units, fraction) = price.trim().split_once('.').unwrap_or((price.trim(), "0"));
    let fraction = format!("{fraction:0<2}");
    let fraction = fraction
        .get(..2)
        .and_then(|digits| digits.parse::<i64>().ok());
    match (units.parse::<i64>(), fraction) {
        (Ok(units), Some(fraction)) => units * 100 + fraction,
        _ => UNLISTED_PRICE_CENTS,
    }
}

/// A price a merchant writes: a decimal string with at most two decimals
/// ("289", "289.5", "289.00"), in cents; None for anything else.
pub(crate) fn parse_price(text: &str) -> Option<i64> {
    let (units, fraction) = match text.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (text, ""),
    };
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if units.is_empty() || !digits(units) || !digits(fraction) || fraction.len() > 2 {
        return None;
    }
    let fraction = format!("{fraction:0<2}").parse::<i64>().ok()?;
    units
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(fraction)
}

pub(crate) fn format(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The unit price of a line, in cents: its listing's price.
pub(crate) fn unit_cents(listings: &BTreeMap<String, Listing>, item: &Item) -> i64 {
    listings
        .get(&item.sku)
        .map_or(UNLISTED_PRICE_CENTS, |listing| cents(&listing.price))
}

/// Σ unit price × quantity over the lines, as a money string.
pub(crate) fn order_total(listings: &BTreeMap<String, Listing>, items: &[Item]) -> String {
    format(
        items
            .iter()
            .map(|item| unit_cents(listings, item) * i64::from(item.quantity))
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_round_trip() {
        assert_eq!(cents("299.25"), 29925);
        assert_eq!(cents("199"), 19900);
        assert_eq!(cents("0.5"), 50);
        assert_eq!(cents("x"), UNLISTED_PRICE_CENTS);
        assert_eq!(cents("1.aé"), UNLISTED_PRICE_CENTS);
        assert_eq!(format(29925 + 19900), "498.25");
        assert_eq!(format(5), "0.05");
    }

    #[test]
    fn merchant_prices_have_at_most_two_decimals() {
        assert_eq!(parse_price("289.00"), Some(28900));
        assert_eq!(parse_price("289.5"), Some(28950));
        assert_eq!(parse_price("289"), Some(28900));
        for bad in [
            "289.001", "289.", ".5", "-1.00", "+1", "1,50", " 289", "abc", "", "1e3",
        ] {
            assert_eq!(parse_price(bad), None, "{bad:?}");
        }
    }
}

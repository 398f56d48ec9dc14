//! Page-number pagination shared by the Back Market and WooCommerce APIs.

/// A query string as ordered pairs, so that next-page links keep it intact.
pub(crate) type QueryPairs = Vec<(String, String)>;

pub(crate) fn param<'a>(query: &'a QueryPairs, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `page` (1-based) and the page size from `size_key`; Err names the bad parameter.
pub(crate) fn page_and_size(
    query: &QueryPairs,
    size_key: &str,
    default: usize,
) -> Result<(usize, usize), String> {
    let number = |key: &str, default: usize| match param(query, key) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("{key} must be a positive integer")),
    };
    Ok((number("page", 1)?, number(size_key, default)?))
}

/// One page of `items` and the total number of pages.
pub(crate) fn slice<T>(items: Vec<T>, page: usize, size: usize) -> (Vec<T>, usize) {
    let total_pages = items.len().div_ceil(size);
    let start = (page - 1).saturating_mul(size);
    (
        items.into_iter().skip(start).take(size).collect(),
        total_pages,
    )
}

/// `url` with the same query but another page number.
pub(crate) fn url_with_page(url: &str, query: &QueryPairs, page: usize) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in query.iter().filter(|(k, _)| k != "page") {
        serializer.append_pair(key, value);
    }
    serializer.append_pair("page", &page.to_string());
    format!("{url}?{}", serializer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let (items, pages) = slice((1..=7).collect::<Vec<_>>(), 2, 3);
        assert_eq!((items, pages), (vec![4, 5, 6], 3));
        assert!(slice((1..=7).collect::<Vec<_>>(), 9, 3).0.is_empty());
        let query = vec![
            ("state".to_owned(), "1".to_owned()),
            ("page".to_owned(), "1".to_owned()),
        ];
        assert_eq!(
            url_with_page("http://x/ws/orders", &query, 2),
            "http://x/ws/orders?state=1&page=2"
        );
        assert!(page_and_size(&vec![("page".into(), "0".into())], "per_page", 10).is_err());
    }
}

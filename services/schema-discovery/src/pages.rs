//! Pages of lists keyed by a version number, newest first.
//!
//! The page token is [`PageRequest`]'s opaque cursor over the decimal version; anything
//! that does not decode to a positive version is refused like any bad token.

use syncline_domain::{ApiError, Violation};
use syncline_service_kit::pagination::PageRequest;

/// Versions strictly below this one belong to the requested page.
pub fn versions_below(page: &PageRequest) -> Result<i64, ApiError> {
    match &page.after {
        None => Ok(i64::MAX),
        Some(after) => after
            .parse::<i64>()
            .ok()
            .filter(|version| *version > 0)
            .ok_or_else(|| {
                ApiError::invalid(vec![Violation::new(
                    "page_token",
                    "INVALID_PAGE_TOKEN",
                    "is not a token returned by this list",
                )])
            }),
    }
}

/// Trims `rows` to the page and returns the next page's token ("" when last).
pub fn finish<T>(page: &PageRequest, rows: &mut Vec<T>, version_of: impl Fn(&T) -> i64) -> String {
    let mut keyed: Vec<(String, T)> = rows
        .drain(..)
        .map(|row| (version_of(&row).to_string(), row))
        .collect();
    let token = page.finish(&mut keyed, |(key, _)| key);
    rows.extend(keyed.into_iter().map(|(_, row)| row));
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_page_newest_first_through_opaque_tokens() {
        let first = PageRequest::parse(2, "").unwrap();
        assert_eq!(versions_below(&first).unwrap(), i64::MAX);
        let mut rows = vec![5_i64, 4, 3];
        let token = finish(&first, &mut rows, |v| *v);
        assert_eq!(rows, [5, 4]);
        let next = PageRequest::parse(2, &token).unwrap();
        assert_eq!(versions_below(&next).unwrap(), 4);
        let mut last = vec![3_i64];
        assert_eq!(finish(&next, &mut last, |v| *v), "");
    }

    #[test]
    fn tokens_that_are_not_versions_are_refused() {
        for after in ["abc", "0", "-3"] {
            let page = PageRequest {
                size: 10,
                after: Some(after.into()),
            };
            let error = versions_below(&page).unwrap_err();
            assert_eq!(error.violations()[0].field, "page_token", "{after}");
        }
    }
}

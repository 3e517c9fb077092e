//! AIP-158 pagination: `page_size` (0 → default, capped) and opaque `page_token`s.
//!
//! Tokens are keyset cursors: the base64 of the last id returned. Lists order by id, and
//! ids are time-ordered, so a page is one indexed range scan and pages stay stable while
//! rows are added.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use syncline_domain::{ApiError, Violation};

/// Page size when the caller sets none.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// The largest page served; larger requests are capped, not refused.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to return.
    pub size: i64,
    /// Return rows with ids strictly after this one.
    pub after: Option<String>,
}

impl PageRequest {
    /// Validates `page_size` and `page_token`.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, ApiError> {
        let mut violations = Vec::new();
        if page_size < 0 {
            violations.push(Violation::new(
                "page_size",
                "NEGATIVE",
                "must not be negative",
            ));
        }
        let after = if page_token.is_empty() {
            None
        } else {
            match URL_SAFE_NO_PAD
                .decode(page_token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(id) => Some(id),
                None => {
                    violations.push(Violation::new(
                        "page_token",
                        "INVALID_PAGE_TOKEN",
                        "is not a token returned by this list",
                    ));
                    None
                }
            }
        };
        if !violations.is_empty() {
            return Err(ApiError::invalid(violations));
        }
        let size = match i64::from(page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        Ok(Self { size, after })
    }

    /// How many rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Trims `rows` to the page and returns the token of the next page ("" when last).
    pub fn finish<T>(&self, rows: &mut Vec<T>, id_of: impl Fn(&T) -> &str) -> String {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|last| URL_SAFE_NO_PAD.encode(id_of(last)))
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

// Lists keyed by a version number, newest first: the token is the cursor over the decimal
// version; anything that does not decode to a positive version is refused like any bad token.

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
pub fn finish_versions<T>(
    page: &PageRequest,
    rows: &mut Vec<T>,
    version_of: impl Fn(&T) -> i64,
) -> String {
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
    fn sizes_default_and_cap() {
        assert_eq!(PageRequest::parse(0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::parse(5000, "").unwrap().size, MAX_PAGE_SIZE);
        assert!(PageRequest::parse(-1, "").is_err());
    }

    #[test]
    fn a_token_round_trips_and_garbage_is_refused() {
        let page = PageRequest::parse(2, "").unwrap();
        let mut rows = vec!["a", "b", "c"];
        let token = page.finish(&mut rows, |r| r);
        assert_eq!(rows, vec!["a", "b"]);
        assert_eq!(
            PageRequest::parse(2, &token).unwrap().after.as_deref(),
            Some("b")
        );
        assert!(PageRequest::parse(2, "%%%").is_err());
        let mut last = vec!["x"];
        assert_eq!(page.finish(&mut last, |r| r), "");
    }

    #[test]
    fn versions_page_newest_first_through_opaque_tokens() {
        let first = PageRequest::parse(2, "").unwrap();
        assert_eq!(versions_below(&first).unwrap(), i64::MAX);
        let mut rows = vec![5_i64, 4, 3];
        let token = finish_versions(&first, &mut rows, |v| *v);
        assert_eq!(rows, [5, 4]);
        let next = PageRequest::parse(2, &token).unwrap();
        assert_eq!(versions_below(&next).unwrap(), 4);
        let mut last = vec![3_i64];
        assert_eq!(finish_versions(&next, &mut last, |v| *v), "");
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

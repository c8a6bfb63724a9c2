//! Paging of the console's list endpoints (call records, extensions, trunks,
//! routes): `page` (1-based) and `per_page` (1 to [`MAX_PER_PAGE`], default
//! [`DEFAULT_PER_PAGE`]), which items of a listing a page holds, and the
//! reply `{"items", "page", "per_page", "total"}`. How each endpoint reads
//! `page` and `per_page` from its request stays with the endpoint.

use serde_json::{json, Value};

pub const DEFAULT_PER_PAGE: u64 = 50;
pub const MAX_PER_PAGE: u64 = 500;

/// One page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

/// A page size outside 1 to [`MAX_PER_PAGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPerPage;

impl std::fmt::Display for BadPerPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "must be 1 to {MAX_PER_PAGE}")
    }
}

impl std::error::Error for BadPerPage {}

impl Paging {
    /// `n` as a page size, if it is one.
    pub fn per_page(n: u64) -> Result<u64, BadPerPage> {
        if (1..=MAX_PER_PAGE).contains(&n) {
            Ok(n)
        } else {
            Err(BadPerPage)
        }
    }

    /// How many items come before this page.
    pub fn skip(&self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.per_page)
    }

    /// For a scan that keeps a page as it goes: whether the item at
    /// `index` (0-based among the passing items) belongs on this page,
    /// `kept` items being on it already.
    pub fn keeps(&self, index: u64, kept: usize) -> bool {
        index >= self.skip() && (kept as u64) < self.per_page
    }

    /// This page of `items` (the whole listing, in order).
    pub fn window<T>(&self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        items
            .into_iter()
            .skip(usize::try_from(self.skip()).unwrap_or(usize::MAX))
            .take(usize::try_from(self.per_page).unwrap_or(usize::MAX))
            .collect()
    }

    /// The reply: this page's `items` and the `total` of the listing.
    pub fn reply(&self, items: impl serde::Serialize, total: u64) -> Value {
        json!({
            "items": items,
            "page": self.page,
            "per_page": self.per_page,
            "total": total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_1_to_max() {
        assert_eq!(Paging::per_page(0), Err(BadPerPage));
        assert_eq!(Paging::per_page(1), Ok(1));
        assert_eq!(Paging::per_page(MAX_PER_PAGE), Ok(MAX_PER_PAGE));
        assert_eq!(Paging::per_page(MAX_PER_PAGE + 1), Err(BadPerPage));
        assert_eq!(BadPerPage.to_string(), "must be 1 to 500");
    }

    #[test]
    fn windows_and_scans_agree() {
        let p = Paging {
            page: 2,
            per_page: 3,
        };
        assert_eq!(p.skip(), 3);
        assert_eq!(p.window(0..10), vec![3, 4, 5]);
        let mut kept = Vec::new();
        for i in 0..10u64 {
            if p.keeps(i, kept.len()) {
                kept.push(i);
            }
        }
        assert_eq!(kept, vec![3, 4, 5]);
        let past = Paging {
            page: 5,
            per_page: 3,
        };
        assert!(past.window(0..10).is_empty());
        let huge = Paging {
            page: u64::MAX,
            per_page: MAX_PER_PAGE,
        };
        assert!(huge.window(0..10).is_empty());
        assert!(!huge.keeps(9, 0));
    }

    #[test]
    fn reply_shape() {
        let p = Paging::default();
        assert_eq!(
            p.reply(vec![1, 2], 7).to_string(),
            r#"{"items":[1,2],"page":1,"per_page":50,"total":7}"#
        );
    }
}

//! Cursor pagination as OpenAI's lists do it: `limit` (1–100, default 20) and `after=<id>`.

use crate::DomainError;

/// A page size the client asked for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const DEFAULT: u32 = 20;
    pub const MAX: u32 = 100;

    pub fn parse(raw: Option<i64>) -> Result<Self, DomainError> {
        match raw {
            None => Ok(Self(Self::DEFAULT)),
            Some(n) if (1..=i64::from(Self::MAX)).contains(&n) => Ok(Self(n as u32)),
            Some(n) => Err(DomainError::invalid(
                "limit",
                format!(
                    "Invalid 'limit': {n}. Expected a value between 1 and {}.",
                    Self::MAX
                ),
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// Sort direction of a list that offers `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl Order {
    pub fn parse(raw: Option<&str>) -> Result<Self, DomainError> {
        match raw {
            None | Some("asc") => Ok(Order::Asc),
            Some("desc") => Ok(Order::Desc),
            Some(_) => Err(DomainError::invalid(
                "order",
                "Invalid 'order': expected 'asc' or 'desc'.",
            )),
        }
    }
}

/// Which page to read: at most `limit` items strictly after the item with id `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Limit,
    pub after: Option<String>,
}

impl PageRequest {
    /// The largest page a list serves, from `after` (the dashboard's lists).
    pub fn largest(after: Option<String>) -> Self {
        Self {
            limit: Limit(Limit::MAX),
            after,
        }
    }
}

/// One page of results, oldest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Builds a page from a query that fetched `limit + 1` rows.
    pub fn from_overfetch(mut rows: Vec<T>, limit: Limit) -> Self {
        let has_more = rows.len() > limit.get() as usize;
        rows.truncate(limit.get() as usize);
        Page {
            items: rows,
            has_more,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_more: self.has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_bounds() {
        assert_eq!(Limit::parse(None).unwrap().get(), 20);
        assert_eq!(Limit::parse(Some(1)).unwrap().get(), 1);
        assert_eq!(Limit::parse(Some(100)).unwrap().get(), 100);
        for bad in [0, -1, 101, i64::MAX, i64::MIN] {
            let err = Limit::parse(Some(bad)).unwrap_err();
            assert!(
                matches!(err, DomainError::InvalidInput { param: Some(ref p), .. } if p == "limit")
            );
        }
    }

    #[test]
    fn order_parses() {
        assert_eq!(Order::parse(None).unwrap(), Order::Asc);
        assert_eq!(Order::parse(Some("desc")).unwrap(), Order::Desc);
        assert!(Order::parse(Some("DESC; drop")).is_err());
    }

    #[test]
    fn overfetch_sets_has_more() {
        let limit = Limit::parse(Some(2)).unwrap();
        let page = Page::from_overfetch(vec![1, 2, 3], limit);
        assert_eq!(page.items, vec![1, 2]);
        assert!(page.has_more);
        let page = Page::from_overfetch(vec![1, 2], limit);
        assert!(!page.has_more);
    }
}

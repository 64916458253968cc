//! Keyset pagination: `?limit=` (1..200, default 50) and an opaque `?cursor=`; responses are
//! `{"items": [...], "next_cursor": "..." | null}`. The cursor encodes the last item's UUID
//! (v7, time-ordered), so a page costs one index range scan whatever the table size.

use base64::Engine as _;
use serde::Serialize;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A parsed page request: how many items, and the key to continue after.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<String>,
}

impl PageRequest {
    /// Parses the raw query values: unparseable -> 400, out of range -> 422.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => {
                let n: i64 = raw.trim().parse().map_err(|_| {
                    ApiError::BadRequest(format!("limit {raw:?} is not a whole number"))
                })?;
                if !(1..=MAX_LIMIT).contains(&n) {
                    return Err(ApiError::field(
                        "limit",
                        format!("must be between 1 and {MAX_LIMIT}"),
                    ));
                }
                n
            }
        };
        // `?cursor=` (empty) is the first page, as no cursor is.
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(|c| decode_cursor(c, |k| uuid::Uuid::parse_str(k).is_ok()))
            .transpose()?;
        Ok(PageRequest { limit, after })
    }

    /// Like [`PageRequest::parse`], for lists ordered by another key than a UUID (`is_key`
    /// says which values a cursor may carry).
    pub fn parse_keyed(
        limit: Option<&str>,
        cursor: Option<&str>,
        is_key: fn(&str) -> bool,
    ) -> Result<Self, ApiError> {
        let limit = PageRequest::parse(limit, None)?.limit;
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(|c| decode_cursor(c, is_key))
            .transpose()?;
        Ok(PageRequest { limit, after })
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts the fetched rows to the page and computes the next cursor from the last kept key.
    pub fn finish<R, T>(
        &self,
        mut rows: Vec<R>,
        key: impl Fn(&R) -> &str,
        map: impl FnMut(R) -> T,
    ) -> Page<T> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(key(r)))
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

impl PageRequest {
    /// For ranked results (search): the limit, and the position to continue from, carried in
    /// an opaque cursor. Unparseable -> 400, limit out of range -> 422.
    pub fn parse_offset(limit: Option<&str>, cursor: Option<&str>) -> Result<(i64, i64), ApiError> {
        let page = PageRequest::parse(limit, None)?;
        let offset = match cursor.filter(|c| !c.is_empty()) {
            None => 0,
            Some(raw) => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(raw.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("offset:")?.parse::<i64>().ok())
                .filter(|o| (0..=100_000).contains(o))
                .ok_or_else(|| {
                    ApiError::BadRequest("cursor is not one this server issued".into())
                })?,
        };
        Ok((page.limit, offset))
    }

    /// Cuts `limit + 1` fetched ranked rows to a page, with the cursor of the next position.
    pub fn finish_offset<R, T>(
        mut rows: Vec<R>,
        limit: i64,
        offset: i64,
        map: impl FnMut(R) -> T,
    ) -> Page<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = more.then(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("offset:{}", offset + limit))
        });
        Page {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

pub fn encode_cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_cursor(raw: &str, is_key: fn(&str) -> bool) -> Result<String, ApiError> {
    let bad = || ApiError::BadRequest("cursor is not one this server issued".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    if !is_key(&text) {
        return Err(bad());
    }
    Ok(uuid::Uuid::parse_str(&text)
        .map(|u| u.to_string())
        .unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_400_for_junk_and_422_for_range() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, 50);
        assert_eq!(PageRequest::parse(Some("200"), None).unwrap().limit, 200);
        assert!(matches!(
            PageRequest::parse(Some("abc"), None),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            PageRequest::parse(Some("0"), None),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            PageRequest::parse(Some("201"), None),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            PageRequest::parse(None, Some("!!")),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn cursors_round_trip_and_pages_know_when_more_follow() {
        let id = uuid::Uuid::now_v7().to_string();
        let req = PageRequest::parse(Some("2"), Some(&encode_cursor(&id))).unwrap();
        assert_eq!(req.after.as_deref(), Some(id.as_str()));
        let page = req.finish(vec!["a", "b", "c"], |r| r, |r| r.to_uppercase());
        assert_eq!(page.items, vec!["A", "B"]);
        assert_eq!(page.next_cursor, Some(encode_cursor("b")));
        let last = req.finish(vec!["a"], |r| r, |r| r);
        assert_eq!(last.next_cursor, None);
        // An empty cursor is the first page; a cursor this server did not issue is 400.
        assert_eq!(PageRequest::parse(None, Some("")).unwrap().after, None);
        assert_eq!(PageRequest::parse_offset(None, Some("")).unwrap().1, 0);
        assert!(matches!(
            PageRequest::parse(None, Some("bm90LWEtdXVpZA")),
            Err(ApiError::BadRequest(_))
        ));
    }
}

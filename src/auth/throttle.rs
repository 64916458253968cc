//! Login throttling: 10 failures for one username, or 100 from one client address, within 15
//! minutes lock further attempts (even with the right password) until the window slides past
//! them. A success resets the username's count. The lock always lifts by itself.
//!
//! An attempt is *reserved* before its password is verified ([`reserve_attempt`]): it is
//! counted as a failure at once, atomically with the check of the limit (one write transaction;
//! on PostgreSQL under an advisory lock, so instances behind a load balancer agree), and only a
//! success takes it back. A burst of concurrent attempts therefore gets at most the limit's
//! verifications. The same throttle guards `POST /auth/password` (wrong current passwords).

use chrono::{NaiveDateTime, TimeDelta};
use diesel::QueryResult;

use crate::db::DbConnection;
use crate::models::login_failures::{self, FailureKey};

pub const WINDOW_SECS: i64 = 15 * 60;
pub const USERNAME_LIMIT: i64 = 10;
pub const CLIENT_LIMIT: i64 = 100;

/// The form a tried username is counted under: its folded key (as usernames are compared),
/// bounded.
pub fn username_key(username: &str) -> String {
    let bounded: String = username.chars().take(256).collect();
    crate::text::fold_key(&bounded)
}

/// The form a client address is counted under: an IPv4 address as it is, an IPv6 address by
/// its /64 network (RFC 4291: one subscriber usually holds a whole /64, so counting single
/// addresses would let one client rotate through 2^64 of them).
pub fn client_key(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let network = ipnet::Ipv6Net::new(v6, 64)
                .map(|n| n.trunc())
                .unwrap_or_else(|_| ipnet::Ipv6Net::from(v6));
            network.to_string()
        }
    }
}

/// `None` when a login may be tried now, or the seconds until it may (1..=900).
pub fn locked_for(
    conn: &mut DbConnection,
    username: &str,
    client_ip: &str,
    at: NaiveDateTime,
) -> QueryResult<Option<u64>> {
    let window = TimeDelta::seconds(WINDOW_SECS);
    let since = at - window;
    let mut retry_after: Option<u64> = None;
    for (key, limit) in [
        (FailureKey::Username(username), USERNAME_LIMIT),
        (FailureKey::Client(client_ip), CLIENT_LIMIT),
    ] {
        // The lock holds while `limit` failures remain inside the window, that is until the
        // limit-th most recent one is older than the window.
        if let Some(oldest_counted) =
            login_failures::nth_recent_failure(conn, key, since, limit - 1)?
        {
            let remaining = (oldest_counted + window - at).num_milliseconds();
            let secs = ((remaining + 999) / 1000).clamp(1, WINDOW_SECS) as u64;
            retry_after = Some(retry_after.map_or(secs, |r| r.max(secs)));
        }
    }
    Ok(retry_after)
}

/// Checks the limits and, when they allow an attempt, counts it as a failure in the same
/// transaction. `Some(seconds)` (1..=900) when the caller must wait instead; nothing is counted
/// then. A success is reported with [`record_success`].
pub fn reserve_attempt(
    conn: &mut DbConnection,
    username: &str,
    client_ip: &str,
    at: NaiveDateTime,
) -> QueryResult<Option<u64>> {
    crate::db::write_transaction(conn, |conn| {
        login_failures::lock_for_reservation(conn)?;
        if let Some(wait) = locked_for(conn, username, client_ip, at)? {
            return Ok(Some(wait));
        }
        login_failures::record_failure(conn, username, client_ip, at)?;
        login_failures::purge_before(conn, at - TimeDelta::seconds(WINDOW_SECS))?;
        Ok(None)
    })
}

pub fn record_success(conn: &mut DbConnection, username: &str) -> QueryResult<()> {
    login_failures::clear_username(conn, username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_per_64() {
        let a = client_key("2001:db8:1:2::1".parse().unwrap());
        let b = client_key("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap());
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, client_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(client_key("::ffff:127.0.0.1".parse().unwrap()), "127.0.0.1");
        assert_eq!(client_key("192.0.2.1".parse().unwrap()), "192.0.2.1");
    }
}

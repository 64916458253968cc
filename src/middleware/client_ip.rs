//! The client address: the peer, or, when the peer is a configured trusted proxy, the
//! rightmost forwarded hop that is not itself trusted (RFC 7239 `Forwarded`, else
//! `X-Forwarded-For`). Put in request extensions as [`ClientAddress`] for the audit log, the
//! login throttle and the CSRF check.

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed (`MEDLABEL_TRUSTED_PROXIES`), registered
/// as `web::Data<TrustedProxies>` by `startup`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

/// Who is calling from where, in request extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress {
    /// The client's address, IPv4-mapped IPv6 addresses unmapped (`::ffff:1.2.3.4` is
    /// `1.2.3.4`).
    pub ip: IpAddr,
    /// True when the peer is a configured trusted proxy: only then do forwarding headers
    /// (`X-Forwarded-For`, `-Host`, `-Proto`, `Forwarded`) mean anything.
    pub via_trusted_proxy: bool,
}

/// The layer.
pub async fn resolve_client_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let trusted = req
        .app_data::<web::Data<TrustedProxies>>()
        .map(|t| t.0.as_slice())
        .unwrap_or_default();
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_canonical())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    // RFC 7239 `Forwarded` when the proxy sends it, else `X-Forwarded-For`; several lines of
    // one header are one list (RFC 9110 section 5.3), the proxy's own value last.
    let header = |name: &str| joined_header(req.headers(), name);
    let hops = match header("forwarded") {
        Some(forwarded) => forwarded_for_hops(&forwarded),
        None => header("x-forwarded-for")
            .map(|chain| {
                chain
                    .split(',')
                    .map(|hop| hop.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let address = ClientAddress {
        ip: client_ip(peer, &hops, trusted),
        via_trusted_proxy: trusted.iter().any(|net| net.contains(&peer)),
    };
    req.extensions_mut().insert(address);
    next.call(req).await
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// rightmost `X-Forwarded-For` hop that is not trusted (hops a client wrote itself sit to the
/// left of what the proxies appended, so they are never reached while the chain is trusted).
/// IPv4-mapped IPv6 addresses (RFC 4291 section 2.5.5.2, as a dual-stack `[::]` listener
/// reports IPv4 peers) are unmapped before matching and in the result.
///
/// `hops` are the forwarded addresses, client first (as `X-Forwarded-For` lists them, or the
/// `for=` of each `Forwarded` element); `None` for a hop that is not an address (`unknown`, an
/// obfuscated `_name`, junk), where the walk stops.
pub fn client_ip(peer: IpAddr, hops: &[Option<IpAddr>], trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut last = peer;
    for hop in hops.iter().rev() {
        match hop.map(|ip| ip.to_canonical()) {
            Some(ip) if is_trusted(&ip) => last = ip,
            Some(ip) => return ip,
            None => return last,
        }
    }
    last
}

/// Every line of header `name` joined into one comma-separated list (RFC 9110 section 5.3), or
/// `None` when it is absent. A line that is not visible ASCII counts as an unparseable element.
pub fn joined_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all(name)
        .map(|v| v.to_str().unwrap_or("unparseable"))
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// The `for=` address of each element of an RFC 7239 `Forwarded` header, in order:
/// `for=192.0.2.60`, `for="192.0.2.60:8080"`, `for="[2001:db8::17]:4711"`; `None` where an
/// element has no address (`unknown`, `_hidden`, no `for`).
pub fn forwarded_for_hops(forwarded: &str) -> Vec<Option<IpAddr>> {
    forwarded
        .split(',')
        .map(|element| {
            let value = forwarded_param(element, "for")?;
            if let Some(bracketed) = value.strip_prefix('[') {
                return bracketed.split(']').next()?.parse().ok();
            }
            value
                .parse()
                .ok()
                .or_else(|| value.rsplit_once(':')?.0.parse().ok())
        })
        .collect()
}

/// The value of parameter `name` (case-insensitive, quotes removed) in one element of an
/// RFC 7239 `Forwarded` header (`for=...;host=...;proto=...`).
pub fn forwarded_param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn xff(chain: &str) -> Vec<Option<IpAddr>> {
        chain.split(',').map(|h| h.trim().parse().ok()).collect()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_forwards() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, &xff("1.2.3.4"), &[]), peer);
        assert_eq!(
            client_ip(peer, &xff("1.2.3.4"), &nets(&["10.0.0.0/8"])),
            peer
        );
    }

    #[test]
    fn trusted_proxies_yield_the_rightmost_untrusted_hop() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(proxy, &xff("6.6.6.6, 198.51.100.7, 10.0.0.1"), &trusted).to_string(),
            "198.51.100.7"
        );
        assert_eq!(client_ip(proxy, &[], &trusted), proxy);
        assert_eq!(client_ip(proxy, &xff("garbage"), &trusted), proxy);
    }

    #[test]
    fn forwarded_elements_name_their_clients() {
        let hops = forwarded_for_hops(
            "for=192.0.2.60;proto=https, For=\"198.51.100.7:8080\", for=\"[2001:db8::17]:4711\", for=unknown, by=1.2.3.4",
        );
        let shown: Vec<String> = hops
            .iter()
            .map(|h| h.map(|ip| ip.to_string()).unwrap_or_default())
            .collect();
        assert_eq!(
            shown,
            ["192.0.2.60", "198.51.100.7", "2001:db8::17", "", ""]
        );
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(
                proxy,
                &forwarded_for_hops("for=6.6.6.6, for=\"198.51.100.7\""),
                &trusted
            )
            .to_string(),
            "198.51.100.7"
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_unmapped() {
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(mapped, &xff("::ffff:198.51.100.7"), &trusted).to_string(),
            "198.51.100.7"
        );
        assert_eq!(
            client_ip("::ffff:203.0.113.9".parse().unwrap(), &[], &[]).to_string(),
            "203.0.113.9"
        );
    }
}

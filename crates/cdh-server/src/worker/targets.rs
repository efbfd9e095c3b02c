//! Which addresses webhooks may reach: public ones only, unless the operator allows private
//! ranges (on-premise receivers, the tests' loopback receiver).
//!
//! A webhook URL is checked when it is registered and again when a delivery connects. At
//! connect time the delivery client resolves the name itself (`PublicResolver`) and connects
//! only to the addresses it just checked, so a name that resolves to a public address at
//! registration and to an internal one later (DNS rebinding) is still refused. A URL whose
//! host is an address is checked before the client sends anything: the client does not
//! resolve an address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What a refused delivery records: nothing about the target's ports.
pub const REFUSED: &str = "refused: private address";

/// How long a registration waits for the name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a URL cannot be a webhook target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not an absolute http(s) URL with a host.
    NotHttp,
    /// It carries a user name or a password.
    UserInfo,
    /// It names, or resolves to, an address that is not public.
    PrivateAddress,
    /// Its name does not resolve.
    Unresolved,
}

impl Refusal {
    /// The sentence the API answers with.
    pub fn message(&self) -> &'static str {
        match self {
            Self::NotHttp => "`url` must be an http or https URL with a host",
            Self::UserInfo => "`url` must not carry a user name or password",
            Self::PrivateAddress => {
                "`url` must reach a public address (loopback, private, link-local and other \
                 internal ranges are refused unless the operator allows private ranges)"
            }
            Self::Unresolved => "`url`'s host name does not resolve",
        }
    }
}

/// Checks a URL given for a webhook and returns it as it will be stored: an absolute http(s)
/// URL with a host and no user info whose host, or every address its name resolves to, is
/// public (any address when `allow_private`).
pub async fn check_url(text: &str, allow_private: bool) -> Result<String, Refusal> {
    let url = reqwest::Url::parse(text.trim()).map_err(|_| Refusal::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::NotHttp);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::UserInfo);
    }
    let port = url.port_or_known_default().unwrap_or(80);
    match url.host() {
        None => return Err(Refusal::NotHttp),
        Some(url::Host::Domain("")) => return Err(Refusal::NotHttp),
        // The URL parser reads every numeric form (`2130706433`, `0x7f.1`) as an address.
        Some(url::Host::Ipv4(ip)) => check_address(IpAddr::V4(ip), allow_private)?,
        Some(url::Host::Ipv6(ip)) => check_address(IpAddr::V6(ip), allow_private)?,
        // Any address may be reached: nothing to resolve.
        Some(url::Host::Domain(_)) if allow_private => {}
        Some(url::Host::Domain(name)) => {
            if is_local_name(name) {
                return Err(Refusal::PrivateAddress);
            }
            let resolved = tokio::time::timeout(
                RESOLVE_TIMEOUT,
                tokio::net::lookup_host((name.to_owned(), port)),
            )
            .await
            .map_err(|_| Refusal::Unresolved)?
            .map_err(|_| Refusal::Unresolved)?;
            let mut any = false;
            for address in resolved {
                check_address(address.ip(), allow_private)?;
                any = true;
            }
            if !any {
                return Err(Refusal::Unresolved);
            }
        }
    }
    Ok(url.to_string())
}

/// `Ok` when a delivery may connect to `ip`.
pub fn check_address(ip: IpAddr, allow_private: bool) -> Result<(), Refusal> {
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(Refusal::PrivateAddress)
    }
}

/// Whether the URL's host is an address a delivery may not reach (the client resolves names
/// itself, through `PublicResolver`, but never an address).
pub fn refuses_address_host(url: &str, allow_private: bool) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => check_address(IpAddr::V4(ip), allow_private).is_err(),
        Some(url::Host::Ipv6(ip)) => check_address(IpAddr::V6(ip), allow_private).is_err(),
        _ => false,
    }
}

/// Names that always mean this machine or its network.
fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.ends_with(".local")
        || name.ends_with(".internal")
}

/// Whether an address is on the public internet: not loopback, private, link-local, shared
/// (CGNAT), unspecified, broadcast, multicast, documentation, benchmarking or reserved, and
/// not one of those written as IPv6 (IPv4-mapped, IPv4-compatible, 6to4, NAT64).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        || (segments[0] == 0x2001 && segments[1] == 0x0db8))
}

/// The IPv4 address an IPv6 one carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), 6to4 (`2002:ab:cd::/16`) and NAT64 (`64:ff9b::/96`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(mapped) = ip.to_ipv4_mapped() {
        Some(mapped)
    } else if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        Some(low)
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(low)
    } else {
        None
    }
}

/// The delivery client's resolver: resolves with the system, then keeps only the addresses a
/// delivery may reach, and fails with `PrivateTarget` when none is left. The client connects
/// only to what this returns.
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver {
    pub allow_private: bool,
}

/// The resolver's error when a name resolves only to addresses a delivery may not reach.
#[derive(Debug)]
pub struct PrivateTarget;

impl std::fmt::Display for PrivateTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REFUSED)
    }
}

impl std::error::Error for PrivateTarget {}

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            if !allow_private && is_local_name(&host) {
                return Err(Box::new(PrivateTarget) as Box<dyn std::error::Error + Send + Sync>);
            }
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await?
                .filter(|a| check_address(a.ip(), allow_private).is_ok())
                .collect();
            if resolved.is_empty() {
                return Err(Box::new(PrivateTarget) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(resolved.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The resolver as the client builder takes it.
pub fn resolver(allow_private: bool) -> Arc<PublicResolver> {
    Arc::new(PublicResolver { allow_private })
}

/// Whether a request failed because its target was refused by `PublicResolver`.
pub fn was_refused(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if error.is::<PrivateTarget>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> Option<Refusal> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(check_url(url, false)).err()
    }

    #[test]
    fn internal_targets_are_refused_in_every_spelling() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://127.0.0.1:8080/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[2002:a00:1::]/",
            "http://[64:ff9b::a00:1]/",
            "http://localhost:9000/",
            "http://api.localhost/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://224.0.0.1/",
        ] {
            assert_eq!(refused(url), Some(Refusal::PrivateAddress), "{url}");
        }
    }

    #[test]
    fn user_info_and_other_schemes_are_refused() {
        assert_eq!(
            refused("http://user:pass@8.8.8.8/"),
            Some(Refusal::UserInfo)
        );
        assert_eq!(refused("http://user@8.8.8.8/"), Some(Refusal::UserInfo));
        assert_eq!(refused("ftp://8.8.8.8/"), Some(Refusal::NotHttp));
        assert_eq!(refused("not a url"), Some(Refusal::NotHttp));
    }

    #[test]
    fn public_addresses_pass_and_the_operator_may_allow_private_ones() {
        assert_eq!(refused("https://8.8.8.8/hook"), None);
        assert_eq!(refused("https://[2606:4700::1111]/hook"), None);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let allowed = runtime.block_on(check_url("http://127.0.0.1:9/hook", true));
        assert_eq!(allowed.as_deref(), Ok("http://127.0.0.1:9/hook"));
        assert!(refuses_address_host("http://10.1.2.3/", false));
        assert!(!refuses_address_host("http://10.1.2.3/", true));
        assert!(!refuses_address_host("http://example.com/", false));
    }
}

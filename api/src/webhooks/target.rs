//! Where a webhook may point: an `http` or `https` URL whose host is a
//! public address, checked when the webhook is made and again for every
//! delivery at connect time (a name may resolve elsewhere later: DNS
//! rebinding). Without this, any key could make the farm POST to its own
//! loopback, the cloud's metadata address or the private network (SSRF).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Why a target URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the url is not a valid absolute URL: {0}")]
    Malformed(String),
    #[error("the url is longer than {0} characters")]
    TooLong(usize),
    #[error("the url must use http or https, not `{0}`")]
    Scheme(String),
    #[error("the url must not carry a user name or password")]
    Credentials,
    #[error("the url has no host")]
    NoHost,
    #[error("the url's host `{host}` is {what}; webhooks go to public addresses only")]
    NotPublic { host: String, what: &'static str },
    #[error("the url's host `{0}` does not resolve")]
    Unresolved(String),
}

/// Parses and checks a target URL's form (not where its name resolves).
pub fn parse(text: &str, max_chars: usize, allow_private: bool) -> Result<Url, TargetError> {
    if text.chars().count() > max_chars {
        return Err(TargetError::TooLong(max_chars));
    }
    let url = Url::parse(text).map_err(|e| TargetError::Malformed(e.to_string()))?;
    // Parsing percent-encodes and punycodes: the URL sent (and stored) may
    // be much longer than the text given.
    if url.as_str().chars().count() > max_chars {
        return Err(TargetError::TooLong(max_chars));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    match url.host() {
        None => return Err(TargetError::NoHost),
        Some(Host::Ipv4(ip)) => check_ip(&ip.to_string(), IpAddr::V4(ip), allow_private)?,
        Some(Host::Ipv6(ip)) => check_ip(&ip.to_string(), IpAddr::V6(ip), allow_private)?,
        Some(Host::Domain(name)) => {
            let lower = name.to_ascii_lowercase();
            if !allow_private && (lower == "localhost" || lower.ends_with(".localhost")) {
                return Err(TargetError::NotPublic { host: name.to_string(), what: "loopback" });
            }
        }
    }
    Ok(url)
}

/// Resolves `url`'s host now and refuses it if any address it names is not
/// public: a webhook is checked where it points when it is made.
pub async fn resolve(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    let Some(Host::Domain(name)) = url.host() else { return Ok(()) };
    let addresses = lookup(name).await.map_err(|_| TargetError::Unresolved(name.to_string()))?;
    for address in addresses {
        check_ip(name, address.ip(), allow_private)?;
    }
    Ok(())
}

async fn lookup(name: &str) -> std::io::Result<Vec<SocketAddr>> {
    let addresses: Vec<SocketAddr> =
        tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((name, 0)))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "name lookup timed out"))??
            .collect();
    if addresses.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"));
    }
    Ok(addresses)
}

fn check_ip(host: &str, ip: IpAddr, allow_private: bool) -> Result<(), TargetError> {
    match (allow_private, not_public(ip)) {
        (false, Some(what)) => Err(TargetError::NotPublic { host: host.to_string(), what }),
        _ => Ok(()),
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => not_public_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address written as IPv6 is judged as IPv4.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return not_public_v4(v4);
            }
            not_public_v6(v6)
        }
    }
}

fn not_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        _ if ip.is_unspecified() || a == 0 => "unspecified",
        _ if ip.is_broadcast() => "broadcast",
        _ if ip.is_multicast() => "multicast",
        // Carrier-grade NAT (100.64.0.0/10): shared, not public.
        _ if a == 100 && (64..128).contains(&b) => "shared (carrier-grade NAT)",
        // IETF protocol assignments, documentation and benchmarking ranges.
        _ if a == 192 && b == 0 && c == 0 => "reserved",
        _ if ip.is_documentation() => "documentation",
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking",
        _ if a >= 240 => "reserved",
        // The old 6to4 relay anycast range.
        _ if a == 192 && b == 88 && c == 99 => "reserved (6to4 relay)",
        _ => return None,
    })
}

fn not_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let first = segments[0];
    // Forms that carry an IPv4 address inside are judged by it: the
    // deprecated IPv4-compatible ::a.b.c.d, SIIT's ::ffff:0:a.b.c.d and
    // 6to4's 2002:aabb:ccdd::.
    let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return not_public_v4(embedded(segments[6], segments[7])).or(Some("IPv4-compatible"));
    }
    if segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return not_public_v4(embedded(segments[6], segments[7])).or(Some("IPv4-translated"));
    }
    if first == 0x2002 {
        return not_public_v4(embedded(segments[1], segments[2])).or(Some("6to4"));
    }
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_multicast() => "multicast",
        _ if (first & 0xfe00) == 0xfc00 => "private (unique local)",
        _ if (first & 0xffc0) == 0xfe80 => "link-local",
        _ if first == 0x2001 && ip.segments()[1] == 0x0db8 => "documentation",
        // NAT64 (64:ff9b::/96) reaches IPv4 addresses, private ones too.
        _ if first == 0x0064 && ip.segments()[1] == 0xff9b => "translated (NAT64)",
        // Teredo tunnels (2001::/32) reach whatever their server relays to.
        _ if first == 0x2001 && segments[1] == 0 => "Teredo",
        _ if first == 0x0100 && segments[1..4] == [0, 0, 0] => "discard-only",
        _ if (first & 0xffc0) == 0xfec0 => "site-local",
        _ => return None,
    })
}

/// The delivery client's resolver: the system's, refusing any name that
/// resolves to a non-public address, so the check holds at connect time.
#[derive(Debug, Clone)]
pub(crate) struct PublicOnly {
    pub(crate) allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addresses = lookup(&host).await?;
            for address in &addresses {
                check_ip(&host, address.ip(), allow_private)?;
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

impl PublicOnly {
    pub(crate) fn shared(allow_private: bool) -> Arc<Self> {
        Arc::new(Self { allow_private })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> TargetError {
        parse(text, 2048, false).expect_err(text)
    }

    #[test]
    fn public_http_and_https_urls_pass() {
        assert!(parse("https://hooks.example.com/farm?x=1", 2048, false).is_ok());
        assert!(parse("http://93.184.216.34:8080/in", 2048, false).is_ok());
        assert!(parse("https://[2606:2800:220:1::1]/in", 2048, false).is_ok());
    }

    #[test]
    fn private_loopback_and_metadata_addresses_are_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[::127.0.0.1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[2002:a9fe:a9fe::]/",
            "http://[2001:0:4136:e378::1]/",
            "http://[100::1]/",
            "http://[fec0::1]/",
            "http://192.88.99.1/",
            "http://localhost:8080/",
            "http://api.localhost/",
        ] {
            assert!(matches!(refused(url), TargetError::NotPublic { .. }), "{url}");
        }
    }

    #[test]
    fn other_schemes_credentials_and_long_urls_are_refused() {
        assert_eq!(refused("file:///etc/passwd"), TargetError::Scheme("file".into()));
        assert_eq!(refused("gopher://example.com/"), TargetError::Scheme("gopher".into()));
        assert_eq!(refused("https://user:pw@example.com/"), TargetError::Credentials);
        assert!(matches!(refused("not a url"), TargetError::Malformed(_)));
        let long = format!("https://example.com/{}", "a".repeat(3000));
        assert_eq!(refused(&long), TargetError::TooLong(2048));
        // Short as typed, long as sent: each `é` is six characters encoded.
        let encoded = format!("https://example.com/{}", "é".repeat(400));
        assert_eq!(refused(&encoded), TargetError::TooLong(2048));
    }

    #[test]
    fn private_addresses_pass_when_allowed() {
        assert!(parse("http://127.0.0.1:9/", 2048, true).is_ok());
        assert!(parse("http://localhost/", 2048, true).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let url = parse("http://localtest.invalid/", 2048, false).unwrap();
        // `.invalid` never resolves: refused as unresolved, not let through.
        assert!(matches!(resolve(&url, false).await, Err(TargetError::Unresolved(_))));
        let resolver = PublicOnly { allow_private: false };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let error = reqwest::dns::Resolve::resolve(&resolver, name).await.err().expect("localhost is refused");
        assert!(error.to_string().contains("loopback"), "{error}");
    }
}

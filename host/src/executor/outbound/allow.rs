//! The allow-list of one function version: which URLs its handler may request, written as Spin
//! writes `allowed_outbound_hosts` (`https://api.example.com`, `https://*.example.com:443`,
//! `http://127.0.0.1:8080`, `*://*:*`), and which addresses a request may then connect to.
//!
//! Deny by default: an empty list allows nothing. A pattern is a scheme (`http`, `https` or `*`),
//! a host (a name, an IP literal, `*.` and a suffix, or `*`) and an optional port (a number, a
//! range `8000-8999`, or `*`; without one, the scheme's default port). A request to a loopback,
//! private, link-local or unspecified address is refused unless the pattern that allowed it
//! names that exact host (no wildcard): see [`Reach`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The most patterns one function version may list.
pub const MAX_PATTERNS: usize = 100;

/// A function version's parsed allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<Pattern>,
}

/// Which addresses a request that the allow-list let through may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only globally routable addresses: the pattern that matched has a wildcard host, so the
    /// name could resolve anywhere (a public-looking name pointed at 10.0.0.5 is refused).
    Public,
    /// Any address: the pattern names this exact host, so the operator chose it knowingly.
    Named,
}

/// Why a request was refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No pattern matches the request's scheme, host and port.
    NotAllowed { origin: String },
    /// A pattern matched, but only by wildcard, and the host is an IP literal that is not public.
    PrivateAddress { origin: String, ip: IpAddr },
    /// The URL has no scheme or host Sluice can check.
    Unsupported { url: String },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NotAllowed { origin } => write!(
                f,
                "{origin} is not in the function's allowed_outbound_hosts; deploy it with \
                 `--allow-outbound {origin}` (or a pattern that covers it) to allow it"
            ),
            Denial::PrivateAddress { origin, ip } => write!(
                f,
                "{origin} is a non-public address ({ip}), which only a pattern naming that exact \
                 host may reach (not a wildcard); add `--allow-outbound {origin}` to allow it"
            ),
            Denial::Unsupported { url } => {
                write!(
                    f,
                    "`{url}` is not an absolute http:// or https:// URL with a host"
                )
            }
        }
    }
}

impl AllowList {
    /// Parses every pattern; the error names the first bad one and says how to write it.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<AllowList, String> {
        if patterns.len() > MAX_PATTERNS {
            return Err(format!(
                "at most {MAX_PATTERNS} allowed_outbound_hosts patterns, got {}",
                patterns.len()
            ));
        }
        let patterns = patterns
            .iter()
            .map(|p| Pattern::parse(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a request to `scheme://host:port` may be sent, and where it may connect.
    /// `host` is lowercase, without brackets around an IPv6 literal.
    pub fn check(&self, scheme: &str, host: &str, port: u16) -> Result<Reach, Denial> {
        let origin = origin(scheme, host, port);
        let mut reach = None;
        for pattern in &self.patterns {
            if pattern.matches(scheme, host, port) {
                let this = if pattern.names_exactly(host) {
                    Reach::Named
                } else {
                    Reach::Public
                };
                reach = Some(match (reach, this) {
                    (Some(Reach::Named), _) | (_, Reach::Named) => Reach::Named,
                    _ => Reach::Public,
                });
            }
        }
        match reach {
            None => Err(Denial::NotAllowed { origin }),
            Some(Reach::Public) => match host.parse::<IpAddr>() {
                Ok(ip) if !is_public(ip) => Err(Denial::PrivateAddress { origin, ip }),
                _ => Ok(Reach::Public),
            },
            Some(Reach::Named) => Ok(Reach::Named),
        }
    }
}

/// `scheme://host:port` as a user writes it, with brackets around an IPv6 literal.
pub fn origin(scheme: &str, host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

/// The scheme's default port.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: Scheme,
    host: Host,
    port: Port,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Suffix(String),
    /// A name or an IP literal, lowercase.
    Exact(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    Any,
    /// The request's scheme's default (80 or 443), when the pattern gives none.
    Default,
    Range(u16, u16),
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        let bad = |why: &str| {
            format!(
                "invalid allowed_outbound_hosts pattern `{text}`: {why}; write SCHEME://HOST[:PORT], \
                 e.g. `https://api.example.com`, `https://*.example.com:443` or `http://127.0.0.1:8080`"
            )
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(bad("it has no scheme"));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "*" => Scheme::Any,
            other => return Err(bad(&format!("scheme `{other}` is not http, https or *"))),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad(
                "only a scheme, a host and a port are allowed (no path, query or user)",
            ));
        }
        let (host, port) = split_host_port(rest).map_err(|why| bad(&why))?;
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            Host::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') || !is_name(suffix) {
                return Err(bad("a wildcard host is `*` or `*.` followed by a domain"));
            }
            Host::Suffix(format!(".{suffix}"))
        } else if host.contains('*') {
            return Err(bad("a wildcard host is `*` or `*.` followed by a domain"));
        } else if host.parse::<IpAddr>().is_ok() || is_name(&host) {
            Host::Exact(host)
        } else {
            return Err(bad(&format!(
                "`{host}` is not a host name or an IP address"
            )));
        };
        let port = match port {
            None => Port::Default,
            Some("*") => Port::Any,
            Some(port) => {
                let number = |p: &str| {
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad(&format!("port `{p}` is not a number from 1 to 65535")))
                };
                match port.split_once('-') {
                    Some((low, high)) => {
                        let (low, high) = (number(low)?, number(high)?);
                        if low > high {
                            return Err(bad("a port range goes from low to high"));
                        }
                        Port::Range(low, high)
                    }
                    None => {
                        let port = number(port)?;
                        Port::Range(port, port)
                    }
                }
            }
        };
        Ok(Pattern { scheme, host, port })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = match self.scheme {
            Scheme::Http => scheme == "http",
            Scheme::Https => scheme == "https",
            Scheme::Any => scheme == "http" || scheme == "https",
        };
        let host_ok = match &self.host {
            Host::Any => true,
            Host::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
            Host::Exact(exact) => same_host(exact, host),
        };
        let port_ok = match self.port {
            Port::Any => true,
            Port::Default => default_port(scheme) == Some(port),
            Port::Range(low, high) => (low..=high).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }

    fn names_exactly(&self, host: &str) -> bool {
        matches!(&self.host, Host::Exact(exact) if same_host(exact, host))
    }
}

/// Host names compare case-insensitively, IP literals by address (`::1` is `0:0:0:0:0:0:0:1`).
fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// `host[:port]`, `[v6][:port]`.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("an IPv6 address needs its closing `]`".to_owned());
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        return match after {
            "" => Ok((host, None)),
            port => match port.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected `{port}` after the address")),
            },
        };
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            Err("write an IPv6 address in brackets, e.g. `http://[::1]:8080`".to_owned())
        }
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((text, None)),
    }
}

fn is_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether `ip` is a globally routable address: not loopback, private (RFC 1918, fc00::/7),
/// link-local (169.254.0.0/16 with the cloud metadata service, fe80::/10), unspecified, shared
/// (100.64.0.0/10), multicast, broadcast or documentation space. IPv4-mapped IPv6 addresses are
/// judged as the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                    || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                    || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                    || (first == 0x0064 && v6.segments()[1] == 0xff9b)) // NAT64 to anything
            }
        },
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
        || a >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> AllowList {
        AllowList::parse(patterns).unwrap()
    }

    #[test]
    fn an_empty_list_denies_everything() {
        let none = AllowList::default();
        assert!(matches!(
            none.check("https", "api.example.com", 443),
            Err(Denial::NotAllowed { .. })
        ));
    }

    #[test]
    fn exact_hosts_match_their_scheme_and_default_port() {
        let allow = list(&["https://api.example.com"]);
        assert_eq!(
            allow.check("https", "api.example.com", 443),
            Ok(Reach::Named)
        );
        assert!(allow.check("http", "api.example.com", 80).is_err());
        assert!(allow.check("https", "api.example.com", 8443).is_err());
        assert!(allow.check("https", "evil.example.com", 443).is_err());
        assert!(
            allow
                .check("https", "api.example.com.evil.io", 443)
                .is_err()
        );
        assert_eq!(
            list(&["HTTPS://API.Example.com"]).check("https", "api.example.com", 443),
            Ok(Reach::Named)
        );
    }

    #[test]
    fn wildcards_cover_subdomains_ports_and_schemes() {
        let allow = list(&["https://*.example.com:443", "*://*:8000-8999"]);
        assert_eq!(
            allow.check("https", "a.b.example.com", 443),
            Ok(Reach::Public)
        );
        assert!(allow.check("https", "example.com", 443).is_err());
        assert!(allow.check("https", "badexample.com", 443).is_err());
        assert_eq!(allow.check("http", "anything.io", 8080), Ok(Reach::Public));
        assert!(allow.check("http", "anything.io", 9000).is_err());
    }

    #[test]
    fn private_addresses_need_a_pattern_naming_them() {
        let wildcard = list(&["http://*:8080"]);
        assert!(matches!(
            wildcard.check("http", "127.0.0.1", 8080),
            Err(Denial::PrivateAddress { .. })
        ));
        assert!(matches!(
            wildcard.check("http", "169.254.169.254", 8080),
            Err(Denial::PrivateAddress { .. })
        ));
        // A name matched by a wildcard may only connect to public addresses (checked after
        // resolving it).
        assert_eq!(wildcard.check("http", "localhost", 8080), Ok(Reach::Public));

        let named = list(&["http://127.0.0.1:8080", "http://[::1]:8080"]);
        assert_eq!(named.check("http", "127.0.0.1", 8080), Ok(Reach::Named));
        assert_eq!(named.check("http", "::1", 8080), Ok(Reach::Named));
        assert!(named.check("http", "127.0.0.2", 8080).is_err());
        // Both kinds of pattern match: the one naming the host decides.
        let both = list(&["http://*:8080", "http://localhost:8080"]);
        assert_eq!(both.check("http", "localhost", 8080), Ok(Reach::Named));
    }

    #[test]
    fn bad_patterns_say_how_to_write_them() {
        for (pattern, says) in [
            ("api.example.com", "no scheme"),
            ("ftp://example.com", "scheme `ftp`"),
            ("https://example.com/path", "no path"),
            ("https://ex*ample.com", "wildcard host"),
            ("https://*.", "wildcard host"),
            ("https://example.com:0", "port `0`"),
            ("https://example.com:99999", "port `99999`"),
            ("https://example.com:9-1", "low to high"),
            ("http://::1:80", "brackets"),
            ("http://[::1", "closing"),
            ("http://exa mple.com", "not a host name"),
        ] {
            let error = AllowList::parse(&[pattern]).unwrap_err();
            assert!(error.contains(says), "{pattern}: {error}");
            assert!(error.contains("SCHEME://HOST[:PORT]"), "{error}");
        }
        let too_many: Vec<String> = (0..=MAX_PATTERNS)
            .map(|i| format!("https://h{i}.example.com"))
            .collect();
        assert!(AllowList::parse(&too_many).is_err());
    }

    #[test]
    fn public_means_globally_routable() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}

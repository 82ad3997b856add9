//! `RAMPART_URL`: the three forms a guard will use, and why any other is refused.
//!
//! The token travels in plain HTTP, so only loopback addresses qualify; host names other
//! than `localhost` are never resolved (no DNS, no `/etc/hosts` in an exec wrapper); a
//! `unix:` path must be absolute, because the library runs in processes whose working
//! directory is anywhere.

/// Where the policy server listens.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target<'a> {
    /// `http://127.x.x.x:PORT` or `http://localhost:PORT`; `host` is the `host:port` text
    /// for the Host header.
    Tcp {
        ip: [u8; 4],
        port: u16,
        host: &'a [u8],
    },
    /// `unix:/abs/path` (also `unix:///abs/path`).
    Unix { path: &'a [u8] },
}

/// Why a URL is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UrlError {
    /// Not one of the three forms.
    Unsupported,
    /// An IPv4 address outside 127.0.0.0/8.
    NotLoopback,
    /// `unix:` with a relative path.
    RelativeSocket,
}

impl UrlError {
    /// Completes "RAMPART_URL <url> is …".
    pub const fn reason(self) -> &'static str {
        match self {
            UrlError::Unsupported => {
                "not a supported URL (use http://127.0.0.1:PORT, http://localhost:PORT or unix:/path; no https, no host names)"
            }
            UrlError::NotLoopback => {
                "not a loopback address (plain HTTP with the token is only sent to 127.0.0.0/8, localhost or a unix: socket)"
            }
            UrlError::RelativeSocket => {
                "a relative unix: socket path (give an absolute path: the library runs in every working directory)"
            }
        }
    }
}

/// The default when `RAMPART_URL` is unset or empty.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9090";

/// Parses `RAMPART_URL`. `localhost` is 127.0.0.1 without asking anything; a path after
/// the authority is ignored; userinfo, fragments, IPv6 and https are refused.
pub fn parse(url: &[u8]) -> Result<Target<'_>, UrlError> {
    if let Some(path) = url.strip_prefix(b"unix:") {
        let path = path.strip_prefix(b"//").unwrap_or(path);
        return match path {
            [] | [b'/'] => Err(UrlError::Unsupported),
            [b'/', ..] => Ok(Target::Unix { path }),
            _ => Err(UrlError::RelativeSocket),
        };
    }
    let Some(rest) = url.strip_prefix(b"http://") else {
        return Err(UrlError::Unsupported);
    };
    let hostport = rest.split(|&b| b == b'/').next().unwrap_or(b"");
    let (host, port) = match hostport.iter().rposition(|&b| b == b':') {
        Some(i) => (
            hostport.get(..i).unwrap_or(b""),
            hostport.get(i + 1..).unwrap_or(b""),
        ),
        None => (hostport, &b"80"[..]),
    };
    let port = parse_port(port).ok_or(UrlError::Unsupported)?;
    let ip = if host.eq_ignore_ascii_case(b"localhost") {
        Some([127, 0, 0, 1])
    } else {
        parse_ipv4(host)
    };
    match ip {
        Some(ip @ [127, ..]) => Ok(Target::Tcp {
            ip,
            port,
            host: hostport,
        }),
        Some(_) => Err(UrlError::NotLoopback),
        None => Err(UrlError::Unsupported),
    }
}

fn parse_port(v: &[u8]) -> Option<u16> {
    if v.is_empty() || v.len() > 5 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = v.iter().fold(0u32, |n, &b| n * 10 + u32::from(b - b'0'));
    u16::try_from(n).ok().filter(|&p| p != 0)
}

/// Dotted-quad decimal only: `127.1`, octal `0177.0.0.1` and friends are refused rather
/// than interpreted the way some resolvers would.
fn parse_ipv4(v: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = v.split(|&b| b == b'.');
    for slot in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = p.iter().fold(0u32, |n, &b| n * 10 + u32::from(b - b'0'));
        *slot = u8::try_from(n).ok()?;
    }
    if parts.next().is_some() {
        None
    } else {
        Some(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        assert_eq!(
            parse(b"http://127.0.0.1:9090"),
            Ok(Target::Tcp {
                ip: [127, 0, 0, 1],
                port: 9090,
                host: b"127.0.0.1:9090"
            })
        );
        assert_eq!(
            parse(b"http://localhost:19090/"),
            Ok(Target::Tcp {
                ip: [127, 0, 0, 1],
                port: 19090,
                host: b"localhost:19090"
            })
        );
        assert_eq!(
            parse(b"http://127.8.9.10"),
            Ok(Target::Tcp {
                ip: [127, 8, 9, 10],
                port: 80,
                host: b"127.8.9.10"
            })
        );
        assert_eq!(
            parse(b"unix:/run/r.sock"),
            Ok(Target::Unix {
                path: b"/run/r.sock"
            })
        );
        assert_eq!(
            parse(b"unix:///run/r.sock"),
            Ok(Target::Unix {
                path: b"/run/r.sock"
            })
        );
    }

    #[test]
    fn refused() {
        for url in [
            &b"https://x"[..],
            b"http://example.com:80",
            b"http://1.2.3.4:99999",
            b"http://127.0.0.1:0",
            b"http://localhost.example.com:9090",
            b"http://127.0.0.1.example.com:9090",
            b"http://127.1:9090",
            b"http://0177.0.0.1:9090",
            b"http://[::1]:9090",
            b"http://127.0.0.1:9090@10.1.2.3:80/",
            b"http://10.1.2.3:80@127.0.0.1:9090/",
            b"http://127.0.0.1:9090#@10.1.2.3",
            b"unix:",
            b"unix:/",
            b"",
        ] {
            assert!(
                matches!(parse(url), Err(UrlError::Unsupported)),
                "{}",
                core::str::from_utf8(url).unwrap()
            );
        }
        for url in [
            &b"http://10.1.2.3:9090"[..],
            b"http://192.0.2.2:9090/",
            b"http://0.0.0.0:9090",
            b"http://128.0.0.1:9090",
            b"http://126.255.255.255:9090",
        ] {
            assert_eq!(parse(url), Err(UrlError::NotLoopback));
        }
        for url in [&b"unix:rampart.sock"[..], b"unix:./r.sock", b"unix:../x"] {
            assert_eq!(parse(url), Err(UrlError::RelativeSocket));
        }
    }
}

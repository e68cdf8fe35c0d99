//! Where a release goes: `ssh://[user@]host[:port][/prefix]` (a live board) or `dir:PATH` (a
//! root filesystem mounted on this machine).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// A device to install on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A board reached with the system OpenSSH client.
    Ssh(SshTarget),
    /// A root filesystem mounted at this path (an SD card, an image).
    Dir(PathBuf),
}

/// An SSH destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// Login user (`None`: ssh's default).
    pub user: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (`None`: ssh's default).
    pub port: Option<u16>,
    /// Absolute path prefix on the board; empty for `/`.
    pub prefix: String,
}

const HELP: &str = "write --to ssh://user@host[:port][/prefix] for a live board or dir:/mnt/rootfs for a mounted root filesystem";

impl Target {
    /// Parses a `--to` URI.
    pub fn parse(uri: &str) -> Result<Target> {
        let uri = uri.trim();
        let bad =
            |why: &str| Error::new(ErrorKind::BadUri, format!("--to {uri}: {why}")).help(HELP);
        if let Some(path) = uri.strip_prefix("dir:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("no path after dir:"));
            }
            return Ok(Target::Dir(PathBuf::from(path)));
        }
        let Some(rest) = uri.strip_prefix("ssh://") else {
            return Err(bad("unknown kind of target"));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if let Some(u) = user {
            if u.is_empty()
                || !u
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(bad(
                    "the user name may hold letters, digits, `.`, `_` and `-` only",
                ));
            }
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs a closing `]`"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty()
            || host.starts_with('-')
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:%".contains(c))
        {
            return Err(bad("no valid host name or address"));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
            ),
        };
        let prefix = prefix.trim_end_matches('/').to_string();
        check_prefix(&prefix).map_err(|why| bad(&why))?;
        Ok(Target::Ssh(SshTarget {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            prefix,
        }))
    }

    /// The `<prefix>/opt/resq` folder as the host sees it (dir:) or as the board does (ssh).
    pub fn root(&self) -> String {
        match self {
            Target::Dir(p) => format!("{}/opt/resq", p.display()),
            Target::Ssh(s) => format!("{}/opt/resq", s.prefix),
        }
    }

    /// `<prefix>/opt/resq` as the running board sees it (for the systemd unit).
    pub fn board_root(&self) -> String {
        match self {
            Target::Dir(_) => "/opt/resq".to_string(),
            Target::Ssh(s) => format!("{}/opt/resq", s.prefix),
        }
    }
}

/// Paths go into remote shell commands: allow a plain, absolute, `..`-free set of characters.
fn check_prefix(prefix: &str) -> std::result::Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
    {
        return Err(format!(
            "the path prefix `{prefix}` may hold letters, digits and / . _ - + @ only"
        ));
    }
    if prefix.split('/').any(|c| c == "..") {
        return Err(format!("the path prefix `{prefix}` must not contain `..`"));
    }
    Ok(())
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Dir(p) => write!(f, "dir:{}", p.display()),
            Target::Ssh(s) => {
                f.write_str("ssh://")?;
                if let Some(u) = &s.user {
                    write!(f, "{u}@")?;
                }
                if s.host.contains(':') {
                    write!(f, "[{}]", s.host)?;
                } else {
                    f.write_str(&s.host)?;
                }
                if let Some(p) = s.port {
                    write!(f, ":{p}")?;
                }
                f.write_str(&s.prefix)
            }
        }
    }
}

/// Reads an inventory: one `--to` URI per line; blank lines and `#` comments are skipped.
pub fn read_inventory(path: &Path) -> Result<Vec<Target>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::io_error("--inventory: cannot read", path, &e))?;
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        out.push(Target::parse(line).map_err(|e| {
            Error::new(
                ErrorKind::BadUri,
                format!(
                    "--inventory {} line {}: {}",
                    path.display(),
                    i + 1,
                    e.message()
                ),
            )
            .help(HELP)
        })?);
    }
    if out.is_empty() {
        return Err(Error::new(
            ErrorKind::BadUri,
            format!("--inventory {} lists no device", path.display()),
        )
        .help("write one URI per line, e.g. ssh://pi@10.0.0.7"));
    }
    Ok(out)
}

/// Refuses the same device twice in one fleet (two flashes would race on one folder).
pub fn check_unique(targets: &[Target]) -> Result<()> {
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].contains(t) {
            return Err(
                Error::new(ErrorKind::BadUri, format!("{t} is listed twice"))
                    .help("list each device once in --to / --inventory"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(uri: &str) -> SshTarget {
        match Target::parse(uri).unwrap() {
            Target::Ssh(s) => s,
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn parses_ssh_uris() {
        let s = ssh("ssh://pi@rpi4.local");
        assert_eq!(
            (
                s.user.as_deref(),
                s.host.as_str(),
                s.port,
                s.prefix.as_str()
            ),
            (Some("pi"), "rpi4.local", None, "")
        );
        let s = ssh("ssh://root@127.0.0.1:2222/mnt/data/");
        assert_eq!((s.port, s.prefix.as_str()), (Some(2222), "/mnt/data"));
        let s = ssh("ssh://[fe80::1%eth0]:22");
        assert_eq!((s.host.as_str(), s.port), ("fe80::1%eth0", Some(22)));
        let s = ssh("ssh://board");
        assert_eq!(s.user, None);
        for u in [
            "ssh://root@127.0.0.1:2222/mnt/data",
            "ssh://[::1]:22",
            "ssh://h",
        ] {
            assert_eq!(Target::parse(u).unwrap().to_string(), u);
        }
        assert_eq!(Target::parse("ssh://h/x").unwrap().root(), "/x/opt/resq");
    }

    #[test]
    fn parses_dir_uris() {
        assert_eq!(
            Target::parse("dir:/mnt/rootfs").unwrap(),
            Target::Dir("/mnt/rootfs".into())
        );
        assert_eq!(
            Target::parse("dir:///mnt/x").unwrap().root(),
            "/mnt/x/opt/resq"
        );
        assert_eq!(
            Target::parse("dir:/mnt/x").unwrap().board_root(),
            "/opt/resq"
        );
    }

    #[test]
    fn bad_uris_say_what_to_write() {
        for (uri, why) in [
            ("/mnt/rootfs", "unknown kind of target"),
            ("scp://h", "unknown kind of target"),
            ("ssh://", "no valid host"),
            ("ssh://pi@h:0", "port must be a number"),
            ("ssh://pi@h:99999", "port must be a number"),
            ("ssh://pi@h/a b", "may hold letters"),
            ("ssh://pi@h/a/../etc", "must not contain `..`"),
            ("ssh://p'i@h", "user name"),
            ("ssh://-oProxyCommand=x", "no valid host"),
            ("dir:", "no path"),
        ] {
            let e = Target::parse(uri).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadUri);
            let s = e.to_string();
            assert!(
                s.contains(uri) && s.contains(why) && s.contains("ssh://user@host"),
                "{uri}: {s}"
            );
        }
    }

    #[test]
    fn inventory_skips_comments_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fleet.txt");
        std::fs::write(
            &p,
            "# boards\nssh://pi@a\n\n  ssh://pi@b:22  # lab\ndir:/mnt/c\n",
        )
        .unwrap();
        assert_eq!(read_inventory(&p).unwrap().len(), 3);
        std::fs::write(&p, "ssh://pi@a\nrpi-b\n").unwrap();
        let e = read_inventory(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("rpi-b"), "{e}");
        let t = vec![
            Target::parse("ssh://a").unwrap(),
            Target::parse("ssh://a").unwrap(),
        ];
        assert!(check_unique(&t)
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
    }
}

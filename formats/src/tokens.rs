//! The API tokens of platform.toml (`[[tokens]]`), for the intake server (issue 3).
//!
//! ```toml
//! [[tokens]]
//! name = "exchange-gateway"
//! sha256 = "<hex SHA-256 of the token>"   # never the token itself
//! role = "submit"                          # may post trades; "operator" may also open/close
//! ```
//!
//! [`crate::reference::read_platform`] accepts the `tokens` key without interpreting it; this
//! reader interprets it, with the same kind of messages (file, line, key, value, reason).
//! Every problem is reported: an unknown key, a missing key, a hash that is not 64 hex digits,
//! an unknown role, a name or a hash used twice.

use std::collections::BTreeSet;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::fields::id_problem;
use crate::model::{Location, RowError};
use crate::FormatError;

/// The most tokens a platform may declare (every request is checked against each).
pub const TOKENS_MAX: usize = 256;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Post trades, read sessions and accounts.
    Submit,
    /// Everything `Submit` may, and open and close sessions.
    Operator,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Submit => "submit",
            Role::Operator => "operator",
        }
    }

    /// Whether this role includes everything `needed` allows.
    pub fn allows(&self, needed: Role) -> bool {
        match needed {
            Role::Submit => true,
            Role::Operator => *self == Role::Operator,
        }
    }
}

/// One configured token: its name (for logs and metrics) and the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub name: String,
    pub sha256: [u8; 32],
    pub role: Role,
}

/// Reads the `[[tokens]]` of platform.toml; no `tokens` key is an empty list.
pub fn read_tokens(path: &Path) -> Result<Result<Vec<AccessToken>, Vec<RowError>>, FormatError> {
    let bytes = std::fs::read(path).map_err(|source| FormatError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_tokens(path, &bytes))
}

/// [`read_tokens`] on the bytes of a platform.toml.
pub fn parse_tokens(path: &Path, bytes: &[u8]) -> Result<Vec<AccessToken>, Vec<RowError>> {
    let error = |line: u64, key: &str, value: &str, reason: &str| {
        RowError::new(Location::new(path, line), "", key, value, reason)
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(vec![error(0, "", "", "file is not UTF-8")]);
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let root = DeTable::parse(text).map_err(|e| {
        let line = line_of(text, e.span().map_or(0, |s| s.start));
        vec![error(line, "", "", e.message().trim_end())]
    })?;
    let Some(value) = root.get_ref().get("tokens") else {
        return Ok(Vec::new());
    };
    let line = |offset: usize| line_of(text, offset);
    let DeValue::Array(items) = value.get_ref() else {
        return Err(vec![error(
            line(value.span().start),
            "tokens",
            "",
            "must be an array of [[tokens]] tables",
        )]);
    };
    if items.len() > TOKENS_MAX {
        return Err(vec![error(
            line(value.span().start),
            "tokens",
            "",
            &format!("declares more than {TOKENS_MAX} tokens"),
        )]);
    }
    let mut errors = Vec::new();
    let mut tokens = Vec::new();
    let (mut names, mut hashes) = (BTreeSet::new(), BTreeSet::new());
    for (i, item) in items.iter().enumerate() {
        let at = line(item.span().start);
        let DeValue::Table(table) = item.get_ref() else {
            errors.push(error(at, &format!("tokens[{i}]"), "", "must be a table"));
            continue;
        };
        let (mut name, mut sha256, mut role) = (None, None, None);
        for (key, value) in table.iter() {
            let key_name: &str = key.get_ref();
            let full = format!("tokens[{i}].{key_name}");
            let at = line(key.span().start);
            let DeValue::String(s) = value.get_ref() else {
                errors.push(error(at, &full, "", "must be a string"));
                continue;
            };
            match key_name {
                "name" => match id_problem(s) {
                    None => name = Some(s.to_string()),
                    Some(reason) => errors.push(error(at, &full, s, reason)),
                },
                "sha256" => match parse_sha256(s) {
                    Some(hash) => sha256 = Some(hash),
                    None => errors.push(error(
                        at,
                        &full,
                        s,
                        "must be 64 hexadecimal digits: the SHA-256 of the token, not the token",
                    )),
                },
                "role" => match s.as_ref() {
                    "submit" => role = Some(Role::Submit),
                    "operator" => role = Some(Role::Operator),
                    _ => errors.push(error(at, &full, s, "must be \"submit\" or \"operator\"")),
                },
                _ => errors.push(error(
                    at,
                    &full,
                    "",
                    "is not a known key (expected name, sha256, role)",
                )),
            }
        }
        for (key, present) in [
            ("name", table.get("name").is_some()),
            ("sha256", table.get("sha256").is_some()),
            ("role", table.get("role").is_some()),
        ] {
            if !present {
                errors.push(error(at, &format!("tokens[{i}].{key}"), "", "is missing"));
            }
        }
        let (Some(name), Some(sha256), Some(role)) = (name, sha256, role) else {
            continue;
        };
        if !names.insert(name.clone()) {
            errors.push(error(
                at,
                &format!("tokens[{i}].name"),
                &name,
                "is used by another token",
            ));
        }
        if !hashes.insert(sha256) {
            errors.push(error(
                at,
                &format!("tokens[{i}].sha256"),
                "",
                "is the hash of another token",
            ));
        }
        tokens.push(AccessToken { name, sha256, role });
    }
    if errors.is_empty() {
        Ok(tokens)
    } else {
        Err(errors)
    }
}

fn line_of(text: &str, offset: usize) -> u64 {
    let before = text.get(..offset).unwrap_or(text);
    before.bytes().filter(|&b| b == b'\n').count() as u64 + 1
}

/// 64 hex digits (either case) as 32 bytes.
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn parse(text: &str) -> Result<Vec<AccessToken>, Vec<RowError>> {
        parse_tokens(Path::new("platform.toml"), text.as_bytes())
    }

    #[test]
    fn reads_tokens() {
        let text = format!(
            "name = \"X\"\n[[tokens]]\nname = \"gw\"\nsha256 = \"{HASH}\"\nrole = \"submit\"\n\
             [[tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nrole = \"operator\"\n",
            HASH.to_uppercase().replace('9', "8")
        );
        let tokens = parse(&text).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].sha256[0], 0x9f);
        assert_eq!(tokens[1].role, Role::Operator);
        assert!(Role::Operator.allows(Role::Submit) && !Role::Submit.allows(Role::Operator));
        assert!(parse("name = \"X\"\n").unwrap().is_empty());
    }

    #[test]
    fn reports_every_problem_with_its_line() {
        let text = format!(
            "[[tokens]]\nname = \"gw\"\nsha256 = \"secret\"\nrole = \"admin\"\ncolour = \"red\"\n\
             [[tokens]]\nname = \"gw\"\nsha256 = \"{HASH}\"\nrole = \"submit\"\n\
             [[tokens]]\nname = \"gw2\"\nsha256 = \"{HASH}\"\n"
        );
        let errors = parse(&text).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let has = |needle: &str| text.iter().any(|e| e.contains(needle));
        assert!(has("platform.toml:3"), "{text:?}");
        assert!(has("must be 64 hexadecimal digits"), "{text:?}");
        assert!(has("must be \"submit\" or \"operator\""), "{text:?}");
        assert!(has("tokens[0].colour"), "{text:?}");
        assert!(has("tokens[2].role"), "{text:?}");
        assert!(!has("is used by another token"), "{text:?}");
        assert!(parse("tokens = 3").is_err());
    }

    #[test]
    fn names_and_hashes_are_unique() {
        let one = format!("[[tokens]]\nname = \"a\"\nsha256 = \"{HASH}\"\nrole = \"submit\"\n");
        let errors = parse(&format!("{one}{one}")).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}

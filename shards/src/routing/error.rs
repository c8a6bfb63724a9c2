//! [`RoutingError`]: why a set of trunks and routes was refused, naming the
//! entry and the field in config key syntax so the loader can point at a line;
//! `TextError`: why a name or a header text was refused.

use std::fmt;

/// Which kind of entry an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Trunk,
    Route,
}

/// A trunk or route that cannot be used.
///
/// `Display`: `route "intl": match."to.user": invalid regex: ...`,
/// `route "x": dest[0]: unknown trunk "carrier-z"`, `trunk "a": defined twice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingError {
    pub subject: Subject,
    /// Position of the entry in the list given to `RoutingSnapshot::build`.
    pub index: usize,
    /// The entry's name.
    pub name: String,
    /// The field inside the entry in config key syntax (`dest[0]`,
    /// `match."to.user"`, `reject.code`); empty when the entry as a whole is
    /// meant (a duplicate trunk name).
    pub field: String,
    pub reason: String,
    /// For a duplicate name: the position of the entry that had it first.
    pub first: Option<usize>,
}

impl RoutingError {
    pub(crate) fn trunk(index: usize, name: &str, field: impl Into<String>) -> ErrorAt {
        ErrorAt(RoutingError {
            subject: Subject::Trunk,
            index,
            name: name.to_string(),
            field: field.into(),
            reason: String::new(),
            first: None,
        })
    }

    pub(crate) fn route(index: usize, name: &str, field: impl Into<String>) -> ErrorAt {
        ErrorAt(RoutingError {
            subject: Subject::Route,
            index,
            name: name.to_string(),
            field: field.into(),
            reason: String::new(),
            first: None,
        })
    }
}

/// A located error waiting for its reason: `RoutingError::route(i, n, "dest").because(..)`.
pub(crate) struct ErrorAt(RoutingError);

impl ErrorAt {
    pub(crate) fn because(self, reason: impl fmt::Display) -> RoutingError {
        RoutingError {
            reason: reason.to_string(),
            ..self.0
        }
    }

    pub(crate) fn duplicate_of(self, first: usize) -> RoutingError {
        RoutingError {
            reason: "defined twice".to_string(),
            first: Some(first),
            ..self.0
        }
    }
}

impl fmt::Display for RoutingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.subject {
            Subject::Trunk => "trunk",
            Subject::Route => "route",
        };
        write!(f, "{what} {:?}", self.name)?;
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for RoutingError {}

/// `parent.key`, quoting `key` when it is not a bare TOML key (`match."to.user"`).
pub(crate) fn field_key(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("{parent}.{key}")
    } else {
        let escaped = key.replace('\\', "\\\\").replace('"', "\\\"");
        format!("{parent}.\"{escaped}\"")
    }
}

/// Why a name or a text bound for a SIP header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextError {
    /// A name that is empty or only whitespace.
    Empty,
    /// A name longer than 128 characters.
    TooLong,
    /// A name with a control character.
    ControlChars,
    /// Header text with a control character other than tab.
    HeaderControlChars,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TextError::Empty => "must not be empty",
            TextError::TooLong => "longer than 128 characters",
            TextError::ControlChars => "must not contain control characters",
            TextError::HeaderControlChars => "must not contain control characters (CR, LF, ...)",
        })
    }
}

impl std::error::Error for TextError {}

/// Checks a name (trunk or route): not empty, at most 128 characters, no control
/// characters.
pub(crate) fn check_name(name: &str) -> Result<(), TextError> {
    if name.trim().is_empty() {
        return Err(TextError::Empty);
    }
    if name.chars().count() > 128 {
        return Err(TextError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(TextError::ControlChars);
    }
    Ok(())
}

/// Checks text that ends up in a SIP header (reason phrase, credentials).
pub(crate) fn check_header_text(s: &str) -> Result<(), TextError> {
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(TextError::HeaderControlChars);
    }
    Ok(())
}

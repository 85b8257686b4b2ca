//! Label selectors and label validation, mirroring upstream
//! `k8s.io/apimachinery/pkg/labels` (parser, `Requirement`, `Selector`), the
//! `metav1.LabelSelector` conversion of `pkg/apis/meta/v1/helpers.go`, and the label
//! key/value checks of `pkg/util/validation`.
//!
//! Error texts are upstream's byte for byte, because clients (kubectl, e2e tests) show
//! or compare them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A set of labels, as found in `metadata.labels`.
pub type Labels = BTreeMap<String, String>;

/// Why a selector or requirement is invalid; messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelSelectorError {
    /// A requirement inside a selector string failed; wraps the cause.
    #[error("unable to parse requirement: {0}")]
    Requirement(Box<LabelSelectorError>),
    /// The parser met a token it did not expect.
    #[error("found '{found}', expected: {expected}")]
    Unexpected {
        /// The literal text of the token found (empty at end of string).
        found: String,
        /// What the grammar allows at that point, as upstream words it.
        expected: &'static str,
    },
    /// `in`/`notin` not followed by `(`; upstream's message has no comma here.
    #[error("found '{found}' expected: '('")]
    ExpectedOpenParen {
        /// The literal text of the token found.
        found: String,
    },
    /// Field validation failures of a requirement, each rendered as upstream's
    /// `field.Error`, shown together as upstream's aggregate error.
    #[error("{}", aggregate(.0))]
    Invalid(Vec<String>),
    /// A `matchExpressions` operator outside In/NotIn/Exists/DoesNotExist.
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    InvalidOperator(String),
}

/// Upstream's `utilerrors.NewAggregate(...).Error()`: one message alone, several as
/// `[a, b]` with duplicates removed.
fn aggregate(msgs: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for m in msgs {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    match seen.as_slice() {
        [one] => (*one).to_owned(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Go's `%q` for a string: double-quoted with Go escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `[]string`; an empty list prints as the nil slice upstream passes.
fn go_string_slice(vals: &[String]) -> String {
    if vals.is_empty() {
        return "[]string(nil)".to_owned();
    }
    let quoted: Vec<String> = vals.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Upstream's `field.Invalid(path, value, detail).Error()`.
fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value}: {detail}")
}

// ---- validation (upstream pkg/util/validation) ----

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
/// Upstream's `LabelValueMaxLength`.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
/// Upstream's `DNS1123LabelMaxLength`.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
/// Upstream's `DNS1123SubdomainMaxLength`.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Upstream's `RegexError`, including its doubled spaces before " or ".
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{ex}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, checked by hand.
fn matches_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, checked by hand.
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => alnum(f) && alnum(l) && b.iter().all(|c| alnum(c) || *c == b'-'),
        _ => false,
    }
}

fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// Upstream's `IsDNS1123Label`: empty when valid, else the reasons.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_owned());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Upstream's `IsDNS1123Subdomain`: empty when valid, else the reasons.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Upstream's `IsQualifiedName`, the rule for label keys and annotation keys:
/// `[prefix/]name` with a DNS-1123 subdomain prefix and a name of at most 63
/// characters. Empty when valid, else the reasons.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Upstream's `IsValidLabelValue`: empty when valid, else the reasons.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !(value.is_empty() || matches_qualified_name(value)) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Upstream's `validateLabelKey`: one `field.Error` joining all reasons with "; ".
fn validate_label_key(key: &str, path: &str) -> Option<String> {
    let errs = is_qualified_name(key);
    (!errs.is_empty()).then(|| invalid(path, &go_quote(key), &errs.join("; ")))
}

// ---- requirements and selectors ----

/// A requirement's operator, as upstream's `selection.Operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `!key`
    DoesNotExist,
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key in (a,b)`
    In,
    /// `key!=value`
    NotEquals,
    /// `key notin (a,b)`
    NotIn,
    /// `key`
    Exists,
    /// `key>1`, integer comparison
    GreaterThan,
    /// `key<1`, integer comparison
    LessThan,
}

impl Operator {
    /// Upstream's string value of the operator (`"!"`, `"="`, `"in"`, `"gt"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::DoesNotExist => "!",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::In => "in",
            Operator::NotEquals => "!=",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `key op values` term of a selector, as upstream's `labels.Requirement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a validated requirement, as upstream's `NewRequirement`: the key must be
    /// a qualified name, values valid label values, and the value count fit the
    /// operator (`Gt`/`Lt` take one integer).
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, LabelSelectorError> {
        let key = key.into();
        let mut errs = Vec::new();
        errs.extend(validate_label_key(&key, "key"));
        let vals = go_string_slice(&values);
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(invalid(
                "values",
                &vals,
                "for 'in', 'notin' operators, values set can't be empty",
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(invalid(
                    "values",
                    &vals,
                    "exact-match compatibility requires one single value",
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(invalid(
                "values",
                &vals,
                "values set must be empty for exists and does not exist",
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid(
                        "values",
                        &vals,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            &go_quote(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let reasons = is_valid_label_value(v);
            if !reasons.is_empty() {
                errs.push(invalid(
                    &format!("values[{i}][{key}]"),
                    &go_quote(v),
                    &reasons.join("; "),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(LabelSelectorError::Invalid(errs));
        }
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given (parsed `in` lists are sorted and deduplicated).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Whether `labels` satisfy this requirement, as upstream's `Requirement.Matches`:
    /// `notin`/`!=` match when the key is absent; `gt`/`lt` need both sides integers.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Upstream's `Requirement.String()`; multiple values print sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        f.write_str(&sorted.join(","))?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: the AND of its requirements, or upstream's `Nothing()`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// Matches every label set, as upstream's `labels.Everything()`.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Matches no label set, as upstream's `labels.Nothing()` (a nil `LabelSelector`).
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the string syntax, as upstream's `labels.Parse`; requirements are sorted
    /// by key.
    pub fn parse(s: &str) -> Result<Selector, LabelSelectorError> {
        let mut reqs = Parser::new(s).parse()?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// `key=value` for every entry, unvalidated, as upstream's `SelectorFromSet`.
    pub fn from_set(labels: &Labels) -> Selector {
        Selector {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
            nothing: false,
        }
    }

    /// `key=value` for every entry, validated, as upstream's `ValidatedSelectorFromSet`.
    pub fn validated_from_set(labels: &Labels) -> Result<Selector, LabelSelectorError> {
        let requirements = labels
            .iter()
            .map(|(k, v)| Requirement::new(k.clone(), Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Converts the API shape, as upstream's `metav1.LabelSelectorAsSelector`: `None`
    /// selects nothing, an empty selector everything.
    pub fn from_label_selector(
        selector: Option<&LabelSelector>,
    ) -> Result<Selector, LabelSelectorError> {
        let Some(ls) = selector else {
            return Ok(Selector::nothing());
        };
        let labels = ls.match_labels.as_ref();
        let exprs = ls.match_expressions.as_deref().unwrap_or_default();
        let mut out = Selector::everything();
        // Upstream walks matchLabels in Go map order; ours is sorted, so the first error
        // reported for several bad labels is deterministic.
        for (k, v) in labels.into_iter().flatten() {
            out = out.add_requirement(Requirement::new(
                k.clone(),
                Operator::Equals,
                vec![v.clone()],
            )?);
        }
        for e in exprs {
            let op = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(LabelSelectorError::InvalidOperator(other.to_owned())),
            };
            out = out.add_requirement(Requirement::new(
                e.key.clone(),
                op,
                e.values.clone().unwrap_or_default(),
            )?);
        }
        Ok(out)
    }

    /// Adds a requirement, keeping requirements sorted by key (upstream's `Add`).
    pub fn add_requirement(mut self, r: Requirement) -> Selector {
        if self.nothing {
            return self;
        }
        self.requirements.push(r);
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    /// Whether every requirement matches `labels` (never, for `nothing()`).
    pub fn matches(&self, labels: &Labels) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector does not restrict anything (`everything()`); `nothing()`
    /// is not empty, as upstream.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is `nothing()`, as upstream's `labels.MatchesNothing`.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, or `None` for `nothing()` (upstream's `selectable == false`).
    pub fn requirements(&self) -> Option<&[Requirement]> {
        (!self.nothing).then_some(self.requirements.as_slice())
    }

    /// The single value `label` must equal, if the selector pins one (upstream's
    /// `RequiresExactMatch`): `=`, `==` or a one-value `in` on the first requirement
    /// for that key.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    /// Upstream's `String()`: requirements joined by ","; empty for everything/nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = LabelSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// The `metav1.LabelSelector` API shape.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Exact `key=value` matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// The `metav1.LabelSelectorRequirement` API shape; the operator stays a string so
/// that unknown operators reach upstream's error message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values for `In`/`NotIn`; must be empty for `Exists`/`DoesNotExist`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

// ---- lexer and parser (upstream's Lexer/Parser in selector.go) ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn literal_token(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a selector into tokens. Like upstream's byte lexer, a NUL byte ends the
/// token it is in and, between tokens, ends the input.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let text = |from: usize, to: usize| s.get(from..to).unwrap_or_default().to_owned();
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        while pos < b.len() && is_whitespace(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() || b[pos] == 0 {
            items.push((Tok::EndOfString, String::new()));
            return items;
        }
        let start = pos;
        if is_special(b[pos]) {
            // Longest run of special characters that is still a token ("!=" over "!").
            let mut best = None;
            let mut end = pos;
            while end < b.len() && is_special(b[end]) {
                match literal_token(&text(start, end + 1)) {
                    Some(t) => best = Some((t, end + 1)),
                    None if best.is_some() => break,
                    None => {}
                }
                end += 1;
            }
            // Every single special character is a token, so `best` is always set.
            let (tok, stop) = best.unwrap_or((Tok::EndOfString, end));
            items.push((tok, text(start, stop)));
            pos = stop;
            if tok == Tok::EndOfString {
                return items;
            }
        } else {
            while pos < b.len() && b[pos] != 0 && !is_special(b[pos]) && !is_whitespace(b[pos]) {
                pos += 1;
            }
            let lit = text(start, pos);
            if pos < b.len() && b[pos] == 0 {
                pos += 1;
            }
            let tok = match literal_token(&lit) {
                Some(t @ (Tok::In | Tok::NotIn)) => t,
                _ => Tok::Identifier,
            };
            items.push((tok, lit));
        }
    }
}

/// Whether `in`/`notin` are keywords (operator position) or plain identifiers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

fn unexpected(found: &str, expected: &'static str) -> LabelSelectorError {
    LabelSelectorError::Unexpected {
        found: found.to_owned(),
        expected,
    }
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn new(s: &str) -> Parser {
        Parser {
            items: lex(s),
            pos: 0,
        }
    }

    fn peek(&self, ctx: Ctx) -> (Tok, String) {
        // The last item is always EndOfString; never read past it.
        let (tok, lit) = self
            .items
            .get(self.pos)
            .or(self.items.last())
            .cloned()
            .unwrap_or((Tok::EndOfString, String::new()));
        match tok {
            Tok::In | Tok::NotIn if ctx == Ctx::Values => (Tok::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn next(&mut self, ctx: Ctx) -> (Tok, String) {
        let item = self.peek(ctx);
        if self.pos < self.items.len() {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, LabelSelectorError> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.peek(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| LabelSelectorError::Requirement(Box::new(e)))?;
                    reqs.push(r);
                    let (t, l) = self.next(Ctx::Values);
                    match t {
                        Tok::EndOfString => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.peek(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(unexpected(&l2, "identifier after ','"));
                            }
                        }
                        _ => return Err(unexpected(&l, "',' or 'end of string'")),
                    }
                }
                Tok::EndOfString => return Ok(reqs),
                _ => return Err(unexpected(&lit, "!, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, LabelSelectorError> {
        let (key, op) = self.key_and_inferred_operator()?;
        if let Some(op) = op {
            return Requirement::new(key, op, Vec::new());
        }
        let op = self.operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        Requirement::new(key, op, values)
    }

    /// Reads `[!]key`; the operator is known already for `!key` and a bare `key`.
    fn key_and_inferred_operator(
        &mut self,
    ) -> Result<(String, Option<Operator>), LabelSelectorError> {
        let (mut tok, mut lit) = self.next(Ctx::Values);
        let mut op = None;
        if tok == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.next(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(unexpected(&lit, "identifier"));
        }
        // Upstream validates the key here with a nil field path, hence "<nil>".
        if let Some(e) = validate_label_key(&lit, "<nil>") {
            return Err(LabelSelectorError::Invalid(vec![e]));
        }
        let (t, _) = self.peek(Ctx::Values);
        if (t == Tok::EndOfString || t == Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Operator, LabelSelectorError> {
        let (tok, lit) = self.next(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(unexpected(&lit, BINARY_OPERATORS)),
        })
    }

    /// `( a, b, ... )`; empty entries stand for the empty value. Sorted, deduplicated
    /// like upstream's `sets.String`.
    fn value_set(&mut self) -> Result<Vec<String>, LabelSelectorError> {
        let (tok, lit) = self.next(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(LabelSelectorError::ExpectedOpenParen { found: lit });
        }
        let (tok, lit) = self.peek(Ctx::Values);
        let mut set = match tok {
            Tok::Identifier | Tok::Comma => {
                let set = self.identifier_list()?;
                if self.next(Ctx::Values).0 != Tok::ClosedPar {
                    return Err(unexpected(&lit, "')'"));
                }
                set
            }
            Tok::ClosedPar => {
                self.next(Ctx::Values);
                vec![String::new()]
            }
            _ => return Err(unexpected(&lit, "',', ')' or identifier")),
        };
        set.sort();
        set.dedup();
        Ok(set)
    }

    fn identifier_list(&mut self) -> Result<Vec<String>, LabelSelectorError> {
        let mut set: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.next(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    set.push(lit);
                    let (t2, l2) = self.peek(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set),
                        _ => return Err(unexpected(&l2, "',' or ')'")),
                    }
                }
                Tok::Comma => {
                    // "(," ",)" and ",," each contribute the empty value.
                    if set.is_empty() {
                        set.push(String::new());
                    }
                    match self.peek(Ctx::Values).0 {
                        Tok::ClosedPar => {
                            set.push(String::new());
                            return Ok(set);
                        }
                        Tok::Comma => {
                            self.next(Ctx::Values);
                            set.push(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(unexpected(&lit, "',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<String, LabelSelectorError> {
        let (tok, _) = self.peek(Ctx::Values);
        if tok == Tok::EndOfString || tok == Tok::Comma {
            return Ok(String::new());
        }
        let (tok, lit) = self.next(Ctx::Values);
        if tok == Tok::Identifier {
            Ok(lit)
        } else {
            Err(unexpected(&lit, "identifier"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match Selector::parse(s) {
            Ok(sel) => panic!("{s} parsed as {sel}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_strings_restring_without_spaces() {
        // upstream selector_test.go TestSelectorParse
        for s in [
            "x=a",
            "x=a,y=b,z=c",
            "",
            "x!=a,y=b",
            "x=",
            "x= ",
            "x=,z= ",
            "x= ,z= ",
            "!x",
            "x>1",
            "x>1,z<5",
        ] {
            assert_eq!(parse(s).to_string(), s.replace(' ', ""), "{s}");
        }
        for s in ["x=a||y=b", "x==a==b", "!x=a", "x<a"] {
            assert!(Selector::parse(s).is_err(), "{s}");
        }
        assert_eq!(parse("x=a,a=x").to_string(), parse("a=x,x=a").to_string());
    }

    #[test]
    fn set_selector_parser_cases() {
        // upstream TestSetSelectorParser
        let good = [
            ("\rx", "x"),
            (
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
            ),
            ("foo  in\t (abc)", "foo in (abc)"),
            ("x notin\n (abc)", "x notin (abc)"),
            ("x in (abc,)", "x in (,abc)"),
            ("x in ()", "x in ()"),
            (
                "x notin (abc,,def),bar,z in (),w",
                "bar,w,x notin (,abc,def),z in ()",
            ),
            ("x,y in (a)", "x,y in (a)"),
            ("x==a", "x==a"),
            ("x notin ( )", "x notin ()"),
            ("x notin (, a)", "x notin (,a)"),
            ("a ", "a"),
            ("a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"),
            ("notin=in", "notin=in"),
        ];
        for (input, want) in good {
            assert_eq!(parse(input).to_string(), want, "{input:?}");
        }
        for bad in [
            "x=a||y=b",
            "x,,y",
            ",x,y",
            "x nott in (y)",
            "a in (xyz),",
            "a in (xyz)b notin ()",
            "a in (xyz abc)",
            "a notin(",
            "a (",
            "(",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_error_messages_match_upstream() {
        assert_eq!(
            err("x=a||y=b"),
            "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert_eq!(
            err("-x"),
            "unable to parse requirement: <nil>: Invalid value: \"-x\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert_eq!(
            err(",x"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(err("x,,y"), "found ',', expected: identifier after ','");
        assert_eq!(err("x=a)"), "found ')', expected: ',' or 'end of string'");
        assert_eq!(err("x=a b"), "found 'b', expected: ',' or 'end of string'");
        assert_eq!(err("!x=a"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            err("x=(a"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            err("x ! y"),
            "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("x in y"),
            "unable to parse requirement: found 'y' expected: '('"
        );
        assert_eq!(
            err("x in (a b)"),
            "unable to parse requirement: found 'b', expected: ',' or ')'"
        );
        assert_eq!(
            err("x in (a,"),
            "unable to parse requirement: found '', expected: ',', or identifier"
        );
        assert_eq!(
            err("x in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("x<a"),
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        let both = err("x>-1");
        assert!(
            both.starts_with(
                "unable to parse requirement: values[0][x]: Invalid value: \"-1\": a valid label"
            ),
            "{both}"
        );
    }

    #[test]
    fn nul_byte_ends_input_like_upstream_lexer() {
        assert_eq!(parse("a \0b").to_string(), "a");
        assert_eq!(err("a\0b"), err("a b"));
    }

    #[test]
    fn matching_like_upstream() {
        // upstream TestSelectorMatches
        let yes = [
            ("", set(&[("x", "y")])),
            ("x=y", set(&[("x", "y")])),
            ("x=y,z=w", set(&[("x", "y"), ("z", "w")])),
            ("x!=y,z!=w", set(&[("x", "z"), ("z", "a")])),
            ("notin=in", set(&[("notin", "in")])),
            ("x", set(&[("x", "z")])),
            ("!x", set(&[("y", "z")])),
            ("x>1", set(&[("x", "2")])),
            ("x<1", set(&[("x", "0")])),
            ("x notin (a)", set(&[])),
            ("x in (a,b)", set(&[("x", "b")])),
            ("x=", set(&[("x", "")])),
        ];
        for (s, l) in yes {
            assert!(parse(s).matches(&l), "{s} should match {l:?}");
        }
        let no = [
            ("x=z", set(&[])),
            ("x=y", set(&[("x", "z")])),
            ("x=y,z=w", set(&[("x", "w"), ("z", "w")])),
            ("x!=y,z!=w", set(&[("x", "z"), ("z", "w")])),
            ("x", set(&[("y", "z")])),
            ("!x", set(&[("x", "z")])),
            ("x>1", set(&[("x", "0")])),
            ("x<1", set(&[("x", "2")])),
            ("x>1", set(&[("x", "v2")])),
            ("x>1", set(&[])),
            ("x in (a)", set(&[])),
        ];
        for (s, l) in no {
            assert!(!parse(s).matches(&l), "{s} should not match {l:?}");
        }
    }

    #[test]
    fn everything_nothing_and_exact_match() {
        assert!(Selector::everything().matches(&set(&[("x", "y")])));
        assert!(Selector::everything().is_empty());
        assert!(!Selector::nothing().matches(&set(&[])));
        assert!(!Selector::nothing().is_empty());
        assert!(Selector::nothing().requirements().is_none());
        let s = parse("x=a,y in (b),z in (c,d),w!=e");
        assert_eq!(s.requires_exact_match("x"), Some("a"));
        assert_eq!(s.requires_exact_match("y"), Some("b"));
        assert_eq!(s.requires_exact_match("z"), None);
        assert_eq!(s.requires_exact_match("w"), None);
        assert_eq!(s.requires_exact_match("q"), None);
        let from = Selector::from_set(&set(&[("b", "2"), ("a", "1")]));
        assert_eq!(from.to_string(), "a=1,b=2");
        assert!(Selector::validated_from_set(&set(&[("a", "-")])).is_err());
    }

    #[test]
    fn label_selector_conversion() {
        let ls: LabelSelector = serde_json::from_str(
            r#"{"matchLabels":{"app":"web"},"matchExpressions":[
                {"key":"tier","operator":"In","values":["b","a"]},
                {"key":"env","operator":"DoesNotExist"}]}"#,
        )
        .unwrap();
        let s = Selector::from_label_selector(Some(&ls)).unwrap();
        assert_eq!(s.to_string(), "app=web,!env,tier in (a,b)");
        assert!(s.matches(&set(&[("app", "web"), ("tier", "a")])));
        assert!(!s.matches(&set(&[("app", "web"), ("tier", "a"), ("env", "x")])));
        assert!(
            Selector::from_label_selector(None)
                .unwrap()
                .matches_nothing()
        );
        assert!(
            Selector::from_label_selector(Some(&LabelSelector::default()))
                .unwrap()
                .is_empty()
        );

        let bad_op = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Gt".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            Selector::from_label_selector(Some(&bad_op))
                .unwrap_err()
                .to_string(),
            "\"Gt\" is not a valid label selector operator"
        );
        let empty_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "In".into(),
                values: Some(vec![]),
            }]),
            ..Default::default()
        };
        assert_eq!(
            Selector::from_label_selector(Some(&empty_in))
                .unwrap_err()
                .to_string(),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        let exists_with_values = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a/b/c".into(),
                operator: "Exists".into(),
                values: Some(vec!["x".into()]),
            }]),
            ..Default::default()
        };
        assert_eq!(
            Selector::from_label_selector(Some(&exists_with_values))
                .unwrap_err()
                .to_string(),
            "[key: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName'), \
             values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist]"
        );
    }

    #[test]
    fn qualified_name_and_label_value_validation() {
        for ok in [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "1234",
            "simple/simple",
            "now-with-dashes/simple",
            "now-with-dashes/now-with-dashes",
            "now.with.dots/simple",
            "now-with.dashes-and.dots/simple",
            "1-num.2-num/3-num",
            "1234/5678",
            "1.2.3.4/5678",
            "Uppercase_Is_OK_123",
            "example.com/Uppercase_Is_OK_123",
            "requests.storage-foo",
            &"a".repeat(63),
            &format!("{}/b", "a".repeat(253)),
        ] {
            assert!(
                is_qualified_name(ok).is_empty(),
                "{ok}: {:?}",
                is_qualified_name(ok)
            );
        }
        for bad in [
            "nospecialchars%^=@",
            "cantendwithadash-",
            "-cantstartwithadash-",
            "only/one/slash",
            "Example.com/abc",
            "example_com/abc",
            "example.com/",
            "/simple",
            &"a".repeat(64),
            &format!("{}/b", "a".repeat(254)),
            "",
        ] {
            assert!(!is_qualified_name(bad).is_empty(), "{bad}");
        }
        assert_eq!(
            is_qualified_name("/a"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(
            is_qualified_name("a/"),
            vec![
                "name part must be non-empty".to_owned(),
                format!(
                    "name part {}",
                    regex_error(
                        QUALIFIED_NAME_ERR_MSG,
                        QUALIFIED_NAME_FMT,
                        &["MyName", "my.name", "123-abc"]
                    )
                ),
            ]
        );
        assert_eq!(
            is_qualified_name(&"a".repeat(64))[0],
            "name part must be no more than 63 characters"
        );
        assert_eq!(
            is_qualified_name("Example.com/a"),
            vec![
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        for ok in [
            "",
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "end-with-num-1",
            "1234",
            "Uppercase_Is_OK_123",
            &"a".repeat(63),
        ] {
            assert!(is_valid_label_value(ok).is_empty(), "{ok}");
        }
        for bad in [
            "nospecialchars%^=@",
            "Tama-nui-te-rā.is.Māori.sun",
            "\\backslashes\\are\\bad",
            "-starts-with-dash",
            "ends-with-dash-",
            ".starts.with.dot",
            "ends.with.dot.",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_label_value(bad).is_empty(), "{bad}");
        }
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert!(is_dns1123_label("abc-1").is_empty());
    }

    #[test]
    fn requirement_constructor_checks() {
        // upstream TestRequirementConstructor
        assert!(Requirement::new("x1", Operator::In, vec![]).is_err());
        assert!(Requirement::new("x2", Operator::NotIn, vec![]).is_err());
        assert!(Requirement::new("x3", Operator::In, vec!["foo".into()]).is_ok());
        assert!(
            Requirement::new("x5", Operator::Equals, vec!["foo".into(), "bar".into()]).is_err()
        );
        assert!(Requirement::new("x6", Operator::Exists, vec![]).is_ok());
        assert!(Requirement::new("x7", Operator::DoesNotExist, vec![]).is_ok());
        assert!(Requirement::new("x8", Operator::Exists, vec!["foo".into()]).is_err());
        assert!(Requirement::new("x9", Operator::In, vec!["bar".into()]).is_ok());
        assert!(Requirement::new("x10", Operator::GreaterThan, vec!["2".into()]).is_ok());
        assert!(Requirement::new("x11", Operator::LessThan, vec!["6".into()]).is_ok());
        assert!(
            Requirement::new("x12", Operator::GreaterThan, vec!["2".into(), "3".into()]).is_err()
        );
        assert!(Requirement::new("x13", Operator::GreaterThan, vec![]).is_err());
        assert!(Requirement::new("x14", Operator::GreaterThan, vec!["a".into()]).is_err());
        assert!(Requirement::new("x15", Operator::LessThan, vec!["b".into()]).is_err());
        assert!(Requirement::new("x16", Operator::Equals, vec!["a".repeat(64)]).is_err());
        assert!(Requirement::new("x17", Operator::Equals, vec!["a b".into()]).is_err());
        assert!(Requirement::new("a".repeat(254), Operator::Exists, vec![]).is_err());
        assert!(Requirement::new("x18", Operator::Equals, vec!["".into()]).is_ok());
        let r = Requirement::new("x", Operator::NotIn, vec!["b".into(), "a".into()]).unwrap();
        assert_eq!(r.to_string(), "x notin (a,b)");
        assert_eq!(r.values(), ["b", "a"]);
    }
}

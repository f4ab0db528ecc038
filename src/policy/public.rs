//! The public-access guard: whether one statement of a repository policy grants access to
//! everyone. Statements come from berth's own grants and from users' raw
//! `spec.extraPolicyStatements`, so the check reads arbitrary IAM JSON and errs on the side of
//! "public": a statement it cannot prove restricted is refused (unless the operator runs with
//! `--allow-public-access`).
//!
//! The rule:
//! - a `Deny` statement is never public;
//! - any other statement (`Allow`) with `NotPrincipal` is public (it grants everyone except the
//!   listed principals);
//! - an `Allow` statement whose principals are all specific (`AWS` accounts or ARNs, `Service`,
//!   `Federated` or `CanonicalUser` values without `*`/`?`) is not public;
//! - any other principal (missing, `*`, a wildcard anywhere, an unknown key, a non-string value,
//!   an empty list) is a wildcard: the statement is public unless its `Condition` restricts the
//!   caller's identity — an identity key ([`IDENTITY_KEYS`]) under a positive operator
//!   ([`RESTRICTING_OPERATORS`], optionally `ForAnyValue:`) whose every value pins an account,
//!   organization or ARN. Negated operators, `...IfExists`, `Null`, `ForAllValues:` (true when the
//!   key is absent), conditions on other keys (`aws:SecureTransport`, `aws:SourceIp`, …), empty
//!   blocks, wildcard-only patterns and policy variables (`${...}`) do not restrict.
//!
//! Element names: IAM spells them `Principal`, `NotPrincipal`, `Condition` and treats them as
//! case-sensitive. To be safe either way, any casing of `Principal`/`NotPrincipal` is examined as
//! a grant, while only the exact `Condition` counts as a restriction. Condition keys are compared
//! case-insensitively (IAM does); operator names must be spelled exactly.

use serde_json::Value;

/// Condition keys that say who the caller is (or on whose behalf a service calls).
pub const IDENTITY_KEYS: [&str; 9] = [
    "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths",
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:SourceAccount",
    "aws:SourceArn",
    "aws:SourceOrgID",
    "aws:SourceOrgPaths",
    "aws:userid",
];

/// Operators that restrict a key to the listed values (true only when the key is present and
/// matches). `...IfExists`, negations and `Null` are deliberately absent.
pub const RESTRICTING_OPERATORS: [&str; 5] = [
    "StringEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "ArnEquals",
    "ArnLike",
];

const PRINCIPAL_TYPES: [&str; 4] = ["AWS", "Service", "Federated", "CanonicalUser"];

/// Why the statement grants access to everyone, or None when it does not.
pub fn public_reason(statement: &Value) -> Option<&'static str> {
    let Some(object) = statement.as_object() else {
        return Some("is not a statement object, so its principal cannot be checked");
    };
    if object.get("Effect").and_then(Value::as_str) == Some("Deny") {
        return None;
    }
    if object.keys().any(|key| key.eq_ignore_ascii_case("NotPrincipal")) {
        return Some("allows NotPrincipal, which grants everyone except the listed principals");
    }
    let principals: Vec<&Value> = object
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case("Principal"))
        .map(|(_, value)| value)
        .collect();
    if principals.is_empty() {
        return Some("allows access without a Principal");
    }
    if principals.iter().all(|principal| specific_principal(principal)) {
        return None;
    }
    if object.get("Condition").is_some_and(restricts_identity) {
        return None;
    }
    Some(
        "allows a wildcard principal (*) without a condition restricting the caller's identity (aws:PrincipalOrgID, aws:PrincipalAccount, aws:PrincipalArn, aws:SourceAccount, aws:SourceArn, ...)",
    )
}

fn is_pattern(value: &str) -> bool {
    value.contains(['*', '?'])
}

/// A principal map naming only specific accounts, ARNs, services or providers.
fn specific_principal(principal: &Value) -> bool {
    // `"Principal": "*"` is the only string form IAM accepts; any other shape is not provably
    // specific.
    let Some(map) = principal.as_object() else {
        return false;
    };
    !map.is_empty()
        && map.iter().all(|(kind, values)| {
            PRINCIPAL_TYPES.contains(&kind.as_str())
                && match values {
                    Value::String(value) => specific_name(value),
                    Value::Array(items) => {
                        !items.is_empty() && items.iter().all(|item| item.as_str().is_some_and(specific_name))
                    }
                    _ => false,
                }
        })
}

fn specific_name(value: &str) -> bool {
    !value.trim().is_empty() && !is_pattern(value) && !value.contains("${")
}

/// Whether a Condition block holds at least one entry pinning the caller's identity (the
/// blocks are ANDed, so one restricting entry restricts the statement).
fn restricts_identity(condition: &Value) -> bool {
    let Some(operators) = condition.as_object() else {
        return false;
    };
    operators.iter().any(|(operator, entries)| {
        let base = operator.strip_prefix("ForAnyValue:").unwrap_or(operator);
        let Some(entries) = entries.as_object() else {
            return false;
        };
        RESTRICTING_OPERATORS.contains(&base)
            && entries.iter().any(|(key, values)| {
                let Some(identity) = IDENTITY_KEYS.iter().find(|k| k.eq_ignore_ascii_case(key)) else {
                    return false;
                };
                let like = base.ends_with("Like");
                let pinned = |value: &Value| match value {
                    Value::String(value) => pins_identity(identity, value, like),
                    Value::Number(number) => pins_identity(identity, &number.to_string(), like),
                    _ => false,
                };
                match values {
                    Value::Array(items) => !items.is_empty() && items.iter().all(pinned),
                    value => pinned(value),
                }
            })
    })
}

/// Whether one condition value limits `key` to a known account, organization or principal. With
/// a `...Like` operator `*` and `?` are wildcards: the part naming the account or organization
/// must be free of them.
fn pins_identity(key: &str, value: &str, like: bool) -> bool {
    if value.trim().is_empty() || value.contains("${") {
        return false;
    }
    if !like {
        return true;
    }
    let anchor = match key {
        // arn:partition:service:region:account:resource — the service and the account must be
        // literal; without an account (S3 buckets: global names anyone may take) the whole
        // resource must be.
        "aws:PrincipalArn" | "aws:SourceArn" => {
            let parts: Vec<&str> = value.splitn(6, ':').collect();
            return parts.len() == 6
                && parts[0] == "arn"
                && !is_pattern(parts[2])
                && !parts[2].is_empty()
                && !is_pattern(parts[4])
                && (!parts[4].is_empty() || !is_pattern(parts[5]));
        }
        // o-xxxx/r-xxxx/ou-xxxx/...: the organization must be literal.
        "aws:PrincipalOrgPaths" | "aws:SourceOrgPaths" => value.split('/').next().unwrap_or_default(),
        // AROAUNIQUEID:session-name: the unique id must be literal.
        "aws:userid" => value.split(':').next().unwrap_or_default(),
        _ => value,
    };
    !anchor.is_empty() && !is_pattern(anchor)
}

#[cfg(test)]
#[path = "public_tests.rs"]
mod tests;

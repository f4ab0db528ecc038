//! Semantic comparison of IAM policy documents: two documents that grant the same thing compare
//! equal whatever their spelling, so an in-sync policy is never rewritten.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Parses a policy as AWS returns it: IAM URL-encodes documents (the SDK does not decode them),
/// ECR returns plain JSON.
pub fn parse_policy(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    // Plain JSON first: IAM's URL-encoded form is never valid JSON, while plain JSON may hold a
    // `%` sequence that URL-decoding would change (found by the property test: `[["%0a"]]`).
    let plain = serde_json::from_str(trimmed);
    if plain.is_ok() || trimmed.starts_with('{') {
        return plain.map_err(|e| format!("policy is not valid JSON: {e}"));
    }
    let decoded = percent_encoding::percent_decode_str(trimmed)
        .decode_utf8()
        .map_err(|e| format!("policy is neither JSON nor URL-encoded UTF-8: {e}"))?;
    serde_json::from_str(&decoded).map_err(|e| format!("policy is not valid JSON: {e}"))
}

/// Whether two policy documents grant the same thing.
pub fn equivalent(left: &Value, right: &Value) -> bool {
    canonical(left) == canonical(right)
}

/// The canonical form: statements as a set without `Sid`; Action/Resource/Principal/Condition
/// values as sorted sets; one value as a one-element list; an account id and its root ARN in
/// any partition as `arn:*:iam::<id>:root` (a policy only ever names its own partition);
/// `"*"` as `{"AWS": ["*"]}`; action names and condition keys in lower case (IAM treats them
/// case-insensitively); scalars in conditions as strings.
pub fn canonical(document: &Value) -> Value {
    let Some(object) = document.as_object() else {
        return document.clone();
    };
    let mut result = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "Statement" => {
                let statements: BTreeSet<String> = one_or_many(value)
                    .iter()
                    .map(|s| canonical_statement(s).to_string())
                    .collect();
                let statements = statements
                    .into_iter()
                    .map(|s| serde_json::from_str(&s).expect("re-parsing serialized JSON"))
                    .collect();
                result.insert(key.clone(), Value::Array(statements));
            }
            // a document without Version is the 2008 grammar
            "Id" => {}
            _ => {
                result.insert(key.clone(), value.clone());
            }
        }
    }
    result
        .entry("Version")
        .or_insert_with(|| Value::String("2008-10-17".into()));
    Value::Object(result)
}

fn canonical_statement(statement: &Value) -> Value {
    let Some(object) = statement.as_object() else {
        return statement.clone();
    };
    let mut result = Map::new();
    for (key, value) in object {
        let canonical = match key.as_str() {
            "Sid" => continue,
            "Action" | "NotAction" => string_set(value, str::to_ascii_lowercase),
            "Resource" | "NotResource" => string_set(value, str::to_owned),
            "Principal" | "NotPrincipal" => canonical_principal(value),
            "Condition" => canonical_condition(value),
            _ => value.clone(),
        };
        result.insert(key.clone(), canonical);
    }
    Value::Object(result)
}

fn canonical_principal(principal: &Value) -> Value {
    match principal {
        Value::String(everyone) if everyone == "*" => serde_json::json!({"AWS": ["*"]}),
        Value::Object(kinds) => Value::Object(
            kinds
                .iter()
                .map(|(kind, ids)| {
                    let ids = if kind == "AWS" {
                        string_set(ids, account_key)
                    } else {
                        string_set(ids, str::to_owned)
                    };
                    (kind.clone(), ids)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An AWS principal's canonical spelling: an account, whether written as its id or as its root
/// ARN in whatever partition, becomes `arn:*:iam::<id>:root`; anything else stays as it is.
fn account_key(principal: &str) -> String {
    let is_account = |id: &str| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit());
    let id = match principal
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
    {
        Some((partition, rest)) if !partition.is_empty() && !partition.contains(':') => {
            rest.strip_suffix(":root").filter(|id| is_account(id))
        }
        _ => Some(principal).filter(|id| is_account(id)),
    };
    match id {
        Some(id) => format!("arn:*:iam::{id}:root"),
        None => principal.to_owned(),
    }
}

fn canonical_condition(condition: &Value) -> Value {
    let Some(operators) = condition.as_object() else {
        return condition.clone();
    };
    Value::Object(
        operators
            .iter()
            .map(|(operator, keys)| {
                let keys = match keys.as_object() {
                    Some(keys) => Value::Object(
                        keys.iter()
                            .map(|(key, values)| (key.to_ascii_lowercase(), string_set(values, str::to_owned)))
                            .collect(),
                    ),
                    None => keys.clone(),
                };
                (operator.clone(), keys)
            })
            .collect(),
    )
}

fn one_or_many(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// A sorted, de-duplicated list of strings; numbers and booleans become their text.
fn string_set(value: &Value, normalize: impl Fn(&str) -> String) -> Value {
    let set: BTreeSet<String> = one_or_many(value)
        .iter()
        .map(|item| match item {
            Value::String(text) => normalize(text),
            other => normalize(&other.to_string()),
        })
        .collect();
    Value::Array(set.into_iter().map(Value::String).collect())
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;

//! Semantic comparison of lifecycle policy texts: berth writes a policy only when ECR's holds
//! different rules, never because of spelling (rule order, key order, whitespace, order inside
//! the tag lists, defaults spelled out or left implicit).

use serde_json::{Map, Value};

/// Whether two lifecycle policy texts declare the same rules. An unparsable text is equivalent to
/// nothing, so a corrupt observed policy is rewritten.
pub fn equivalent(desired: &str, observed: &str) -> bool {
    match (canonical(desired), canonical(observed)) {
        (Some(desired), Some(observed)) => desired == observed,
        _ => false,
    }
}

/// The canonical form of a policy text, or None when it is not JSON:
/// - rules sorted by rulePriority (ties and malformed priorities by their canonical text);
/// - `tagPatternList` and `tagPrefixList` as sorted sets (every entry must match; order and
///   repetition mean nothing), an empty list as no list;
/// - `storageClass: standard` as no storageClass (ECR's default);
/// - an empty description as none: nothing evaluates it and the console shows both alike, so a
///   rewrite would change nothing;
/// - enum values in lower case: if ECR ever echoed `TAGGED` for `tagged`, a case-sensitive
///   comparison would rewrite the policy on every resync;
/// - null members dropped, integral floats (`30.0`) as integers.
pub fn canonical(text: &str) -> Option<Value> {
    let document: Value = serde_json::from_str(text).ok()?;
    let mut document = normalized(document);
    if let Some(Value::Array(rules)) = document.get_mut("rules") {
        let mut canonical_rules: Vec<Value> = rules.drain(..).map(canonical_rule).collect();
        canonical_rules.sort_by_cached_key(|rule| (priority_key(rule), rule.to_string()));
        *rules = canonical_rules;
    }
    Some(document)
}

fn priority_key(rule: &Value) -> Option<i64> {
    rule.get("rulePriority").and_then(Value::as_i64)
}

fn canonical_rule(rule: Value) -> Value {
    let Value::Object(mut rule) = rule else { return rule };
    if rule.get("description").and_then(Value::as_str) == Some("") {
        rule.remove("description");
    }
    if let Some(Value::Object(selection)) = rule.get_mut("selection") {
        for list in ["tagPatternList", "tagPrefixList"] {
            match selection.get(list).map(string_set) {
                Some(Some(set)) if set.is_empty() => {
                    selection.remove(list);
                }
                Some(Some(set)) => {
                    selection.insert(list.to_owned(), Value::Array(set));
                }
                _ => {}
            }
        }
        lower_case_values(selection, &["tagStatus", "countType", "countUnit", "storageClass"]);
        if selection.get("storageClass").and_then(Value::as_str) == Some("standard") {
            selection.remove("storageClass");
        }
    }
    if let Some(Value::Object(action)) = rule.get_mut("action") {
        lower_case_values(action, &["type", "targetStorageClass"]);
    }
    Value::Object(rule)
}

/// A list of strings as a sorted list without repetitions; None for anything else.
fn string_set(list: &Value) -> Option<Vec<Value>> {
    let mut strings = list
        .as_array()?
        .iter()
        .map(|entry| entry.as_str().map(str::to_owned))
        .collect::<Option<Vec<String>>>()?;
    strings.sort();
    strings.dedup();
    Some(strings.into_iter().map(Value::String).collect())
}

fn lower_case_values(object: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        if let Some(Value::String(value)) = object.get_mut(*key) {
            *value = value.to_ascii_lowercase();
        }
    }
}

/// The value without null members, integral floats as integers.
fn normalized(value: Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .filter(|(_, member)| !member.is_null())
                .map(|(key, member)| (key, normalized(member)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        Value::Number(number) => match number.as_f64() {
            Some(float) if !number.is_i64() && !number.is_u64() && float.fract() == 0.0 && float.abs() < 9.0e15 => {
                Value::from(float as i64)
            }
            _ => Value::Number(number),
        },
        other => other,
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;

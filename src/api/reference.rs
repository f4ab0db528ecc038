//! `docs/api-reference.md`, generated from the CRD schemas (`berth docs api-reference`), so
//! the reference says what the apiserver enforces; `tests/crds.rs` fails when it is stale.

use std::fmt::Write;

use serde_json::Value;

/// The API reference of every kind, as Markdown.
pub fn api_reference() -> String {
    let mut out = String::from(
        "# API reference\n\n\
         Generated from the CRD schemas by `berth docs api-reference > docs/api-reference.md`; \
         do not edit by hand. Every field with its type, whether it is required, its default, \
         its allowed values and bounds, and the validation rules (CEL, enforced by apiservers \
         1.25 and newer, and checked again by berth).\n",
    );
    for crd in super::crds() {
        let crd = serde_json::to_value(&crd).expect("a CRD serializes to JSON");
        let spec = &crd["spec"];
        for version in spec["versions"].as_array().into_iter().flatten() {
            let kind = spec["names"]["kind"].as_str().unwrap_or_default();
            let schema = &version["schema"]["openAPIV3Schema"];
            let _ = write!(
                out,
                "\n## {kind}\n\n`{}/{}`, {}; plural `{}`, short names {}.\n",
                spec["group"].as_str().unwrap_or_default(),
                version["name"].as_str().unwrap_or_default(),
                spec["scope"].as_str().unwrap_or_default().to_lowercase(),
                spec["names"]["plural"].as_str().unwrap_or_default(),
                code_list(&spec["names"]["shortNames"]),
            );
            if let Some(description) = schema["description"].as_str() {
                let _ = write!(out, "\n{}\n", one_line(description));
            }
            rules(&mut out, schema);
            for part in ["spec", "status"] {
                if let Some(section) = schema["properties"].get(part) {
                    let _ = write!(out, "\n### {part}\n");
                    if let Some(description) = section["description"].as_str() {
                        let _ = write!(out, "\n{}\n", one_line(description));
                    }
                    rules(&mut out, section);
                    out.push('\n');
                    fields(&mut out, part, section);
                }
            }
        }
    }
    out
}

/// One line per field, depth first, in the schema's (alphabetical) order.
fn fields(out: &mut String, path: &str, schema: &Value) {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let path = format!("{path}.{name}");
        field(out, &path, property, required.contains(&name.as_str()));
        nested(out, &path, property);
    }
}

/// The fields inside a property: its object's properties, its list's items, its map's values.
fn nested(out: &mut String, path: &str, property: &Value) {
    if property.get("properties").is_some() {
        fields(out, path, property);
    }
    if let Some(items) = property.get("items") {
        let path = format!("{path}[]");
        if items.get("properties").is_some() {
            fields(out, &path, items);
        } else if has_constraints(items) {
            field(out, &path, items, false);
        }
    }
    if let Some(values) = property.get("additionalProperties").filter(|v| v.is_object()) {
        let path = format!("{path}.<key>");
        if values.get("properties").is_some() {
            fields(out, &path, values);
        } else if has_constraints(values) {
            field(out, &path, values, false);
        }
    }
}

/// Whether a list item or map value says more than its type (which the parent line gives).
fn has_constraints(schema: &Value) -> bool {
    [
        "description",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
    ]
    .iter()
    .any(|key| schema.get(key).is_some())
}

fn field(out: &mut String, path: &str, schema: &Value, required: bool) {
    let _ = write!(out, "- **`{path}`** ({}", type_of(schema));
    if required {
        out.push_str(", required");
    }
    out.push(')');
    if let Some(description) = schema["description"].as_str() {
        let _ = write!(out, ": {}", one_line(description));
    }
    let facts = facts(schema);
    if !facts.is_empty() {
        let _ = write!(out, "\n  {}", facts.join(" "));
    }
    out.push('\n');
    for rule in rule_messages(schema) {
        let _ = writeln!(out, "  Rule: {rule}");
    }
}

/// `string`, `integer (int64)`, `list of string`, `map of string to string`, `object`, `any`.
fn type_of(schema: &Value) -> String {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) && schema.get("type").is_none() {
        return "any JSON value".into();
    }
    let base = match schema["type"].as_str().unwrap_or("any") {
        "array" => format!("list of {}", type_of(&schema["items"])),
        "object" => match schema.get("additionalProperties").filter(|v| v.is_object()) {
            Some(values) => format!("map of string to {}", type_of(values)),
            None if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) => {
                "object, any fields".into()
            }
            None => "object".into(),
        },
        other => match schema["format"].as_str() {
            Some(format) => format!("{other} ({format})"),
            None => other.to_owned(),
        },
    };
    if schema["nullable"] == Value::Bool(true) {
        format!("{base}, nullable")
    } else {
        base
    }
}

/// Default, allowed values and bounds, as sentences.
fn facts(schema: &Value) -> Vec<String> {
    let mut facts = Vec::new();
    if let Some(default) = schema.get("default") {
        facts.push(format!("Default: `{}`.", json_text(default)));
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", json_text(v))).collect();
        facts.push(format!("One of: {}.", values.join(", ")));
    }
    let bound = |min: &str, max: &str, unit: &str| -> Option<String> {
        match (schema.get(min), schema.get(max)) {
            (Some(min), Some(max)) => Some(format!("{min} to {max}{unit}.")),
            (Some(min), None) => Some(format!("At least {min}{unit}.")),
            (None, Some(max)) => Some(format!("At most {max}{unit}.")),
            (None, None) => None,
        }
    };
    facts.extend(bound("minLength", "maxLength", " characters"));
    facts.extend(bound("minimum", "maximum", ""));
    facts.extend(bound("minItems", "maxItems", " items"));
    facts.extend(bound("minProperties", "maxProperties", " entries"));
    if let Some(pattern) = schema["pattern"].as_str() {
        facts.push(format!("Pattern: `{pattern}`."));
    }
    if let Some(keys) = schema["x-kubernetes-list-map-keys"].as_array() {
        let keys: Vec<String> = keys.iter().map(|k| format!("`{}`", json_text(k))).collect();
        facts.push(format!("A map keyed by {}.", keys.join(", ")));
    }
    facts
}

fn rules(out: &mut String, schema: &Value) {
    let messages = rule_messages(schema);
    if !messages.is_empty() {
        out.push('\n');
        for rule in messages {
            let _ = writeln!(out, "- Rule: {rule}");
        }
    }
}

/// A CEL rule's message (what the apiserver answers), with the rule itself.
fn rule_messages(schema: &Value) -> Vec<String> {
    schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| {
            let expression = rule["rule"].as_str().unwrap_or_default();
            match rule["message"].as_str() {
                Some(message) => format!("{} (`{}`)", one_line(message), one_line(expression)),
                None => format!("`{}`", one_line(expression)),
            }
        })
        .collect()
}

fn json_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn code_list(values: &Value) -> String {
    let names: Vec<String> = values
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| format!("`{}`", json_text(v)))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Descriptions are wrapped doc comments: one paragraph per field.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

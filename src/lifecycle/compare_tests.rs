//! Spelling never counts as a difference; a changed rule always does.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use super::*;
use crate::lifecycle::render;
use crate::lifecycle::test_support;

const DESIRED: &str = r#"{"rules":[{"rulePriority":1,"description":"keep releases","selection":{"tagStatus":"tagged","tagPatternList":["v*","release-*"],"countType":"imageCountMoreThan","countNumber":30},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"tagged","tagPrefixList":["pr-","build"],"countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}},{"rulePriority":3,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":60},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#;

#[test]
fn the_same_text_is_equivalent() {
    assert!(equivalent(DESIRED, DESIRED));
}

#[test]
fn rule_order_key_order_whitespace_and_list_order_do_not_count() {
    let observed = r#"
    {
      "rules": [
        {"action": {"targetStorageClass": "archive", "type": "transition"}, "rulePriority": 3,
         "selection": {"countNumber": 60, "countUnit": "days", "countType": "sinceImagePulled", "tagStatus": "any"}},
        {"selection": {"tagPrefixList": ["build", "pr-"], "tagStatus": "tagged", "countType": "sinceImagePushed",
                       "countNumber": 14, "countUnit": "days"},
         "rulePriority": 2, "action": {"type": "expire"}},
        {"description": "keep releases", "rulePriority": 1, "action": {"type": "expire"},
         "selection": {"countType": "imageCountMoreThan", "countNumber": 30, "tagPatternList": ["release-*", "v*"],
                       "tagStatus": "tagged"}}
      ]
    }"#;
    assert!(equivalent(DESIRED, observed));
}

#[test]
fn defaults_spelled_out_do_not_count() {
    // storageClass standard is ECR's default, an empty description is none, nulls are absence,
    // a repeated tag prefix means nothing more, 30.0 is 30, and enum values in capitals are
    // the same values
    let observed = r#"{"rules":[
        {"rulePriority":1,"description":"keep releases","selection":{"tagStatus":"TAGGED","tagPatternList":["v*","release-*","v*"],"storageClass":"standard","countType":"imageCountMoreThan","countNumber":30.0,"countUnit":null},"action":{"type":"expire"}},
        {"rulePriority":2,"description":"","selection":{"tagStatus":"tagged","tagPrefixList":["pr-","build"],"countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire","targetStorageClass":null}},
        {"rulePriority":3,"selection":{"tagStatus":"any","storageClass":"standard","countType":"sinceImagePulled","countUnit":"days","countNumber":60},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#;
    assert!(equivalent(DESIRED, observed));
}

/// `DESIRED` with one change made to its parsed form.
fn changed(change: impl FnOnce(&mut Value)) -> String {
    let mut document: Value = serde_json::from_str(DESIRED).unwrap();
    change(&mut document);
    document.to_string()
}

#[test]
fn a_real_change_counts() {
    let changes: Vec<(&str, String)> = vec![
        (
            "count changed",
            changed(|d| d["rules"][0]["selection"]["countNumber"] = 31.into()),
        ),
        (
            "prefix added",
            changed(|d| d["rules"][1]["selection"]["tagPrefixList"] = serde_json::json!(["pr-", "build", "dev"])),
        ),
        (
            "pattern replaced",
            changed(|d| d["rules"][0]["selection"]["tagPatternList"] = serde_json::json!(["v*", "rel-*"])),
        ),
        (
            "priority changed",
            changed(|d| d["rules"][1]["rulePriority"] = 4.into()),
        ),
        (
            "action changed",
            changed(|d| d["rules"][1]["action"]["type"] = "transition".into()),
        ),
        (
            "tag status changed",
            changed(|d| d["rules"][2]["selection"]["tagStatus"] = "untagged".into()),
        ),
        (
            "storage class changed",
            changed(|d| d["rules"][2]["selection"]["storageClass"] = "archive".into()),
        ),
        (
            "description changed",
            changed(|d| d["rules"][0]["description"] = "keep".into()),
        ),
        (
            "description removed",
            changed(|d| d["rules"][0]["description"] = Value::Null),
        ),
        (
            "rule removed",
            changed(|d| {
                d["rules"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "patterns became prefixes",
            changed(|d| {
                let selection = d["rules"][0]["selection"].as_object_mut().unwrap();
                let patterns = selection.remove("tagPatternList").unwrap();
                selection.insert("tagPrefixList".into(), patterns);
            }),
        ),
    ];
    for (what, observed) in changes {
        assert!(!equivalent(DESIRED, &observed), "{what} went unnoticed: {observed}");
    }
}

#[test]
fn an_unparsable_text_is_never_equivalent() {
    assert!(!equivalent(DESIRED, ""));
    assert!(!equivalent(DESIRED, "{\"rules\":["));
    assert!(!equivalent(DESIRED, "not json"));
    assert!(!equivalent("", ""));
    assert_eq!(canonical("{]"), None);
}

/// `value` as JSON text with its object keys in a random order and random whitespace.
fn respelled_text(value: &Value, rng: &mut StdRng) -> String {
    let space = |rng: &mut StdRng| if rng.random_bool(0.5) { " " } else { "\n  " };
    match value {
        Value::Object(object) => {
            let mut members: Vec<(&String, &Value)> = object.iter().collect();
            members.shuffle(rng);
            let members: Vec<String> = members
                .into_iter()
                .map(|(key, member)| {
                    format!(
                        "{}{}:{}",
                        Value::String(key.clone()),
                        space(rng),
                        respelled_text(member, rng)
                    )
                })
                .collect();
            format!("{{{}{}}}", space(rng), members.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|item| respelled_text(item, rng)).collect();
            format!("[{}]", items.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

/// The same rules, respelled: rules and tag lists shuffled, keys reordered, whitespace added.
fn respelled(text: &str, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut document: Value = serde_json::from_str(text).unwrap();
    let rules = document["rules"].as_array_mut().unwrap();
    rules.shuffle(&mut rng);
    for rule in rules.iter_mut() {
        for list in ["tagPatternList", "tagPrefixList"] {
            if let Some(Value::Array(entries)) = rule["selection"].get_mut(list) {
                entries.shuffle(&mut rng);
            }
        }
    }
    respelled_text(&document, &mut rng)
}

proptest! {
    /// Whatever ECR hands back (or a user wrote), comparing never panics and is symmetric.
    #[test]
    fn arbitrary_text_never_panics(left in ".{0,64}", right in "\\{\"rules\":\\[.{0,48}\\]\\}") {
        prop_assert_eq!(equivalent(&left, &right), equivalent(&right, &left));
        prop_assert_eq!(canonical(&left), canonical(&left));
        prop_assert_eq!(canonical(&right), canonical(&right));
    }

    /// Rendering is deterministic: the same rules give the same text, equivalent to itself.
    #[test]
    fn rendering_is_deterministic(rules in test_support::rules()) {
        let first = render(&rules).unwrap();
        prop_assert_eq!(&first, &render(&rules).unwrap());
        prop_assert!(equivalent(&first, &first));
    }

    #[test]
    fn respelled_policies_are_equivalent(rules in test_support::rules(), seed in any::<u64>()) {
        let desired = render(&rules).unwrap();
        let observed = respelled(&desired, seed);
        prop_assert!(equivalent(&desired, &observed), "{desired}\n{observed}");
    }

    #[test]
    fn a_changed_count_is_noticed(rules in test_support::rules(), seed in any::<u64>(), which in any::<prop::sample::Index>()) {
        let desired = render(&rules).unwrap();
        let mut document: Value = serde_json::from_str(&respelled(&desired, seed)).unwrap();
        let rule = which.get_mut(document["rules"].as_array_mut().unwrap());
        let count = rule["selection"]["countNumber"].as_u64().unwrap();
        rule["selection"]["countNumber"] = (count + 1).into();
        prop_assert!(!equivalent(&desired, &document.to_string()));
    }

    #[test]
    fn an_added_prefix_is_noticed(rules in test_support::rules(), which in any::<prop::sample::Index>()) {
        let desired = render(&rules).unwrap();
        let mut document: Value = serde_json::from_str(&desired).unwrap();
        let rule = which.get_mut(document["rules"].as_array_mut().unwrap());
        let selection = rule["selection"].as_object_mut().unwrap();
        match selection.get_mut("tagPrefixList") {
            Some(Value::Array(prefixes)) => prefixes.push("zz-added".into()),
            _ => {
                selection.insert("tagStatus".into(), "tagged".into());
                selection.remove("tagPatternList");
                selection.insert("tagPrefixList".into(), serde_json::json!(["zz-added"]));
            }
        }
        prop_assert!(!equivalent(&desired, &document.to_string()));
    }
}

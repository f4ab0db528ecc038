//! Every rule of the CEL and the schema, again in Rust: each failing manifest is refused with a
//! message that starts with the field at fault.

use super::*;
use crate::api::LifecyclePolicySpec;

fn spec(yaml: &str) -> LifecyclePolicySpec {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("manifest does not parse: {e}\n{yaml}"))
}

/// Asserts that the manifest is refused with a message starting with `field` and containing `why`.
fn refused(yaml: &str, field: &str, why: &str) {
    match rules(&spec(yaml)) {
        Ok(rules) => panic!("accepted, expected {field}: {rules:?}\n{yaml}"),
        Err(InvalidRule(message)) => {
            assert!(
                message.starts_with(&format!("{field}: ")),
                "{message:?} should name {field}\n{yaml}"
            );
            assert!(message.contains(why), "{message:?} should say {why:?}\n{yaml}");
        }
    }
}

const VALID: &str = r#"
repositorySelector: {matchLabels: {tier: prod, app.kubernetes.io/part-of: payments}}
mode: Preview
rules:
  - priority: 1
    description: keep the last 30 releases
    selection: {tagStatus: Tagged, tagPatterns: ["v*", "*-*-*-*"], countType: ImageCountMoreThan, countNumber: 30}
    action: {type: Expire}
  - priority: 2
    selection: {tagStatus: Tagged, tagPrefixes: [pr-], countType: SinceImagePushed, countUnit: Days, countNumber: 14}
    action: {type: Expire}
  - priority: 3
    selection: {tagStatus: Untagged, countType: SinceImagePulled, countUnit: Days, countNumber: 30, storageClass: Standard}
    action: {type: Transition, targetStorageClass: Archive}
  - priority: 4
    selection: {tagStatus: Untagged, countType: SinceImageTransitioned, countUnit: Days, countNumber: 90, storageClass: Archive}
    action: {type: Expire}
  - priority: 10
    description: ""
    selection: {tagStatus: Any, countType: ImageCountMoreThan, countNumber: 500}
    action: {type: Expire}
"#;

#[test]
fn a_valid_spec_becomes_rules() {
    let rules = rules(&spec(VALID)).unwrap();
    assert_eq!(
        rules,
        vec![
            Rule {
                priority: 1,
                description: Some("keep the last 30 releases".into()),
                tags: TagSelection::Tagged(TagFilter::Patterns(vec!["v*".into(), "*-*-*-*".into()])),
                storage_class: StorageClass::Standard,
                count: Count::MoreThan(30),
                action: Action::Expire,
            },
            Rule {
                priority: 2,
                description: None,
                tags: TagSelection::Tagged(TagFilter::Prefixes(vec!["pr-".into()])),
                storage_class: StorageClass::Standard,
                count: Count::SincePushed { days: 14 },
                action: Action::Expire,
            },
            Rule {
                priority: 3,
                description: None,
                tags: TagSelection::Untagged,
                storage_class: StorageClass::Standard,
                count: Count::SincePulled { days: 30 },
                action: Action::TransitionToArchive,
            },
            Rule {
                priority: 4,
                description: None,
                tags: TagSelection::Untagged,
                storage_class: StorageClass::Archive,
                count: Count::SinceTransitioned { days: 90 },
                action: Action::Expire,
            },
            Rule {
                priority: 10,
                // an empty description is no description
                description: None,
                tags: TagSelection::Any,
                storage_class: StorageClass::Standard,
                count: Count::MoreThan(500),
                action: Action::Expire,
            },
        ]
    );
}

#[test]
fn repositories_by_name_are_valid_too() {
    let rules = rules(&spec(
        r#"
repositories: [payments-api, payments.worker]
rules:
  - {priority: 5, selection: {tagStatus: Any, countType: SinceImagePushed, countUnit: Days, countNumber: 1}, action: {type: Expire}}
"#,
    ))
    .unwrap();
    assert_eq!(rules.len(), 1);
    // an empty selector selects the whole namespace, as Kubernetes selectors do
    rules_of_selector_only("repositorySelector: {}");
}

fn rules_of_selector_only(selector: &str) {
    let yaml = format!(
        "{selector}\nrules: [{{priority: 1, selection: {{tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}}, action: {{type: Expire}}}}]"
    );
    rules(&spec(&yaml)).unwrap();
}

const ONE_RULE: &str = "[{priority: 1, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}]";

#[test]
fn exactly_one_way_of_selecting_repositories() {
    refused(
        &format!("repositorySelector: {{}}\nrepositories: [a]\nrules: {ONE_RULE}"),
        "spec.repositorySelector",
        "exactly one of repositorySelector and repositories",
    );
    refused(
        &format!("rules: {ONE_RULE}"),
        "spec.repositorySelector",
        "exactly one of repositorySelector and repositories",
    );
}

#[test]
fn repository_names_and_labels_are_checked() {
    refused(
        &format!("repositories: [Payments]\nrules: {ONE_RULE}"),
        "spec.repositories[0]",
        "not an object name",
    );
    refused(
        &format!("repositories: [a, b, a]\nrules: {ONE_RULE}"),
        "spec.repositories[2]",
        "listed twice (also spec.repositories[0])",
    );
    let names: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
    refused(
        &format!("repositories: [{}]\nrules: {ONE_RULE}", names.join(", ")),
        "spec.repositories",
        "at most 100",
    );
    refused(
        &format!("repositorySelector: {{matchLabels: {{'-bad': x}}}}\nrules: {ONE_RULE}"),
        "spec.repositorySelector.matchLabels",
        "'-bad' is not a label key",
    );
    refused(
        &format!("repositorySelector: {{matchLabels: {{'Example.com/tier': x}}}}\nrules: {ONE_RULE}"),
        "spec.repositorySelector.matchLabels",
        "is not a label key",
    );
    refused(
        &format!("repositorySelector: {{matchLabels: {{tier: 'prod env'}}}}\nrules: {ONE_RULE}"),
        "spec.repositorySelector.matchLabels.tier",
        "not a label value",
    );
    let labels: Vec<String> = (0..21).map(|i| format!("l{i}: x")).collect();
    refused(
        &format!(
            "repositorySelector: {{matchLabels: {{{}}}}}\nrules: {ONE_RULE}",
            labels.join(", ")
        ),
        "spec.repositorySelector.matchLabels",
        "at most 20",
    );
    // a prefixed key is fine
    rules_of_selector_only("repositorySelector: {matchLabels: {app.kubernetes.io/name: api}}");
}

#[test]
fn one_to_fifty_rules() {
    refused("repositories: [a]\nrules: []", "spec.rules", "0 rules given, 1 to 50");
    let many: Vec<String> = (1..=51)
        .map(|p| {
            format!(
                "{{priority: {p}, selection: {{tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}}, action: {{type: Expire}}}}"
            )
        })
        .collect();
    refused(
        &format!("repositories: [a]\nrules: [{}]", many.join(", ")),
        "spec.rules",
        "51 rules given, 1 to 50",
    );
}

/// A manifest with `rules` and a valid repository selection.
fn with_rules(rules: &str) -> String {
    format!("repositories: [a]\nrules:\n{rules}")
}

#[test]
fn priorities_are_bounded_and_unique() {
    refused(
        &with_rules(
            "  - {priority: 0, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].priority",
        "outside 1 to 1000",
    );
    refused(
        &with_rules(
            "  - {priority: 3, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 4, selection: {tagStatus: Tagged, tagPrefixes: [v], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 3, selection: {tagStatus: Tagged, tagPrefixes: [w], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[2].priority",
        "also the priority of spec.rules[0]",
    );
}

#[test]
fn any_only_in_the_last_rule() {
    refused(
        &with_rules(
            "  - {priority: 9, selection: {tagStatus: Any, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 10, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.tagStatus",
        "highest priority number",
    );
    // listed first but evaluated last: fine
    rules(&spec(&with_rules(
        "  - {priority: 10, selection: {tagStatus: Any, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 9, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
    )))
    .unwrap();
}

#[test]
fn descriptions_are_bounded() {
    let long = "d".repeat(257);
    refused(
        &with_rules(&format!(
            "  - {{priority: 1, description: {long}, selection: {{tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}}, action: {{type: Expire}}}}"
        )),
        "spec.rules[0].description",
        "at most 256",
    );
}

#[test]
fn tagged_needs_patterns_xor_prefixes() {
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Tagged, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.tagPatterns",
        "neither is set",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Tagged, tagPatterns: [v*], tagPrefixes: [v], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.tagPrefixes",
        "both are set",
    );
}

#[test]
fn untagged_and_any_have_no_tag_lists() {
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, tagPatterns: [v*], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.tagPatterns",
        "only allowed with tagStatus Tagged, not Untagged",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Any, tagPrefixes: [v], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.tagPrefixes",
        "only allowed with tagStatus Tagged, not Any",
    );
}

#[test]
fn tag_filters_are_bounded_and_well_formed() {
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Tagged, tagPatterns: [v*, '*a*b*c*d*'], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.tagPatterns[1]",
        "5 '*' wildcards, at most 4",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Tagged, tagPatterns: ['v 1'], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.tagPatterns[0]",
        "letters, digits",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Tagged, tagPrefixes: ['v*'], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.tagPrefixes[0]",
        "letters, digits",
    );
    refused(
        &with_rules(&format!(
            "  - {{priority: 1, selection: {{tagStatus: Tagged, tagPrefixes: [{}], countType: ImageCountMoreThan, countNumber: 1}}, action: {{type: Expire}}}}",
            "p".repeat(129)
        )),
        "spec.rules[0].selection.tagPrefixes[0]",
        "1 to 128 characters",
    );
    let many: Vec<String> = (0..21).map(|i| format!("p{i}")).collect();
    refused(
        &with_rules(&format!(
            "  - {{priority: 1, selection: {{tagStatus: Tagged, tagPrefixes: [{}], countType: ImageCountMoreThan, countNumber: 1}}, action: {{type: Expire}}}}",
            many.join(", ")
        )),
        "spec.rules[0].selection.tagPrefixes",
        "21 entries given, at most 20",
    );
}

#[test]
fn count_number_is_at_least_one() {
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 0}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.countNumber",
        "0 is outside 1 to 2147483647",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 2147483648}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.countNumber",
        "outside 1 to 2147483647",
    );
}

#[test]
fn count_unit_exactly_with_since_types() {
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countUnit: Days, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.countUnit",
        "not allowed with countType ImageCountMoreThan",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countNumber: 1}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.countUnit",
        "required (Days) with countType SinceImagePushed",
    );
}

#[test]
fn since_image_pulled_only_transitions() {
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePulled, countUnit: Days, countNumber: 30}, action: {type: Expire}}",
        ),
        "spec.rules[0].action.type",
        "SinceImagePulled is only allowed with action type Transition",
    );
}

#[test]
fn since_image_transitioned_expires_archived_images() {
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImageTransitioned, countUnit: Days, countNumber: 90}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.storageClass",
        "SinceImageTransitioned needs storageClass Archive",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImageTransitioned, countUnit: Days, countNumber: 90, storageClass: Archive}, action: {type: Transition, targetStorageClass: Archive}}",
        ),
        "spec.rules[0].action.type",
        "SinceImageTransitioned needs action type Expire",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 90, storageClass: Archive}, action: {type: Expire}}",
        ),
        "spec.rules[0].selection.storageClass",
        "Archive is only allowed with countType SinceImageTransitioned",
    );
}

#[test]
fn transition_targets_the_archive() {
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 30}, action: {type: Transition}}",
        ),
        "spec.rules[0].action.targetStorageClass",
        "Transition needs targetStorageClass Archive",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 30}, action: {type: Transition, targetStorageClass: Standard}}",
        ),
        "spec.rules[0].action.targetStorageClass",
        "Transition needs targetStorageClass Archive",
    );
    refused(
        &with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 30}, action: {type: Expire, targetStorageClass: Archive}}",
        ),
        "spec.rules[0].action.targetStorageClass",
        "only allowed with type Transition",
    );
}

/// The Rust rules and the CRD's CEL rules agree: the valid manifest passes both, and each
/// cross-field violation is refused by both (bounds are schema keywords, which `validate_cel`
/// does not evaluate; `api::cel_tests` checks that they are in the schema).
#[test]
fn agrees_with_the_cel_rules() {
    use kube::core::cel::validate_cel;
    let object = |yaml: &str| crate::api::LifecyclePolicy::new("keep-releases", spec(yaml));
    validate_cel(&object(VALID)).unwrap();
    rules(&spec(VALID)).unwrap();
    let untagged = "{tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}";
    let cross_field_violations = [
        format!("repositorySelector: {{}}\nrepositories: [a]\nrules: {ONE_RULE}"),
        format!("rules: {ONE_RULE}"),
        with_rules(&format!(
            "  - {{priority: 1, selection: {untagged}, action: {{type: Expire}}}}\n  - {{priority: 1, selection: {untagged}, action: {{type: Expire}}}}"
        )),
        with_rules(&format!(
            "  - {{priority: 1, selection: {{tagStatus: Any, countType: ImageCountMoreThan, countNumber: 1}}, action: {{type: Expire}}}}\n  - {{priority: 2, selection: {untagged}, action: {{type: Expire}}}}"
        )),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Tagged, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Tagged, tagPatterns: [v*], tagPrefixes: [v], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, tagPatterns: [v*], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Tagged, tagPatterns: ['*a*b*c*d*'], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countUnit: Days, countNumber: 1}, action: {type: Expire}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countNumber: 1}, action: {type: Expire}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePulled, countUnit: Days, countNumber: 30}, action: {type: Expire}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImageTransitioned, countUnit: Days, countNumber: 90}, action: {type: Expire}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImageTransitioned, countUnit: Days, countNumber: 90, storageClass: Archive}, action: {type: Transition, targetStorageClass: Archive}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 90, storageClass: Archive}, action: {type: Expire}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 30}, action: {type: Transition}}",
        ),
        with_rules(
            "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 30}, action: {type: Expire, targetStorageClass: Archive}}",
        ),
    ];
    for manifest in cross_field_violations {
        assert!(rules(&spec(&manifest)).is_err(), "Rust accepts\n{manifest}");
        assert!(validate_cel(&object(&manifest)).is_err(), "CEL accepts\n{manifest}");
    }
}

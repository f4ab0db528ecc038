//! The exact text ECR receives, rule by rule.

use super::*;

fn rule(priority: u32, tags: TagSelection, count: Count, action: Action) -> Rule {
    Rule {
        priority,
        description: None,
        tags,
        storage_class: StorageClass::Standard,
        count,
        action,
    }
}

fn patterns(patterns: &[&str]) -> TagSelection {
    TagSelection::Tagged(TagFilter::Patterns(patterns.iter().map(|p| p.to_string()).collect()))
}

fn prefixes(prefixes: &[&str]) -> TagSelection {
    TagSelection::Tagged(TagFilter::Prefixes(prefixes.iter().map(|p| p.to_string()).collect()))
}

#[test]
fn a_count_rule_with_patterns() {
    let mut keep_releases = rule(1, patterns(&["v*"]), Count::MoreThan(30), Action::Expire);
    keep_releases.description = Some("keep the last 30 release images".into());
    assert_eq!(
        render(&[keep_releases]).unwrap(),
        r#"{"rules":[{"rulePriority":1,"description":"keep the last 30 release images","selection":{"tagStatus":"tagged","tagPatternList":["v*"],"countType":"imageCountMoreThan","countNumber":30},"action":{"type":"expire"}}]}"#
    );
}

#[test]
fn an_age_rule_without_description() {
    assert_eq!(
        render(&[rule(
            2,
            TagSelection::Untagged,
            Count::SincePushed { days: 14 },
            Action::Expire
        )])
        .unwrap(),
        r#"{"rules":[{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#
    );
}

#[test]
fn a_transition_to_the_archive() {
    assert_eq!(
        render(&[rule(
            3,
            prefixes(&["rc-", "build"]),
            Count::SincePulled { days: 30 },
            Action::TransitionToArchive
        )])
        .unwrap(),
        r#"{"rules":[{"rulePriority":3,"selection":{"tagStatus":"tagged","tagPrefixList":["rc-","build"],"countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#
    );
}

#[test]
fn an_archive_rule_names_its_storage_class() {
    let mut expire_archived = rule(
        4,
        TagSelection::Any,
        Count::SinceTransitioned { days: 90 },
        Action::Expire,
    );
    expire_archived.storage_class = StorageClass::Archive;
    assert_eq!(
        render(&[expire_archived]).unwrap(),
        r#"{"rules":[{"rulePriority":4,"selection":{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":90},"action":{"type":"expire"}}]}"#
    );
}

#[test]
fn rules_are_sorted_by_priority_and_text_is_escaped() {
    let mut quoted = rule(7, TagSelection::Untagged, Count::MoreThan(1), Action::Expire);
    quoted.description = Some("say \"bye\" to\nold images".into());
    let text = render(&[
        quoted.clone(),
        rule(2, patterns(&["*"]), Count::MoreThan(5), Action::Expire),
    ])
    .unwrap();
    assert_eq!(
        text,
        r#"{"rules":[{"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["*"],"countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}},{"rulePriority":7,"description":"say \"bye\" to\nold images","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#
    );
    // the same rules in another order render to the same text
    assert_eq!(
        render(&[rule(2, patterns(&["*"]), Count::MoreThan(5), Action::Expire), quoted]).unwrap(),
        text
    );
}

#[test]
fn a_validated_spec_renders_what_it_declares() {
    let spec: crate::api::LifecyclePolicySpec = serde_saphyr::from_str(
        r#"
repositories: [api]
rules:
  - priority: 20
    selection: {tagStatus: Any, countType: ImageCountMoreThan, countNumber: 100}
    action: {type: Expire}
  - priority: 10
    description: archive stale builds
    selection: {tagStatus: Tagged, tagPatterns: ["build-*"], countType: SinceImagePulled, countUnit: Days, countNumber: 60, storageClass: Standard}
    action: {type: Transition, targetStorageClass: Archive}
"#,
    )
    .unwrap();
    let rules = crate::lifecycle::rules(&spec).unwrap();
    assert_eq!(
        render(&rules).unwrap(),
        r#"{"rules":[{"rulePriority":10,"description":"archive stale builds","selection":{"tagStatus":"tagged","tagPatternList":["build-*"],"countType":"sinceImagePulled","countUnit":"days","countNumber":60},"action":{"type":"transition","targetStorageClass":"archive"}},{"rulePriority":20,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}}]}"#
    );
}

#[test]
fn a_policy_over_ecrs_limit_is_refused() {
    // 50 rules of 20 long patterns each: valid one by one, far too long together
    let long_patterns: Vec<String> = (0..20).map(|i| format!("{i:0>3}{}*", "x".repeat(120))).collect();
    let rules: Vec<Rule> = (1..=50)
        .map(|priority| {
            rule(
                priority,
                TagSelection::Tagged(TagFilter::Patterns(long_patterns.clone())),
                Count::MoreThan(1),
                Action::Expire,
            )
        })
        .collect();
    let InvalidRule(message) = render(&rules).unwrap_err();
    assert!(message.starts_with("spec.rules: "), "{message}");
    assert!(message.contains("at most 30720"), "{message}");
    // up to the limit is fine: eleven such rules are about 29,000 characters
    let text = render(&rules[..11]).unwrap();
    assert!(text.chars().count() <= MAX_POLICY_TEXT_CHARS);
}

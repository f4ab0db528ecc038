//! Property tests (proptest): generated documents, re-spelled at random, compare equal; a real
//! change does not; arbitrary text and JSON never make parsing or comparison panic.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use super::*;

const ACTIONS: &[&str] = &[
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
];

/// One statement in berth's own spelling: lists everywhere, account ids as root ARNs.
fn statement() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec("[0-9]{12}", 1..4),
        "[0-9]{12}",
        prop::sample::subsequence(ACTIONS, 1..ACTIONS.len()),
        prop::bool::weighted(0.8),
        prop::option::of("[0-9]{12}"),
    )
        .prop_map(|(accounts, role_account, actions, allow, organization)| {
            let mut aws: Vec<String> = accounts.iter().map(|a| format!("arn:aws:iam::{a}:root")).collect();
            aws.push(format!("arn:aws:iam::{role_account}:role/ci"));
            let mut statement = json!({
                "Effect": if allow { "Allow" } else { "Deny" },
                "Principal": {"AWS": aws},
                "Action": actions,
            });
            if let Some(organization) = organization {
                statement["Condition"] = json!({"StringEquals": {"aws:PrincipalOrgID": [format!("o-{organization}")]}});
            }
            statement
        })
}

/// A document of one to three statements, each with its own Sid.
fn document() -> impl Strategy<Value = Value> {
    prop::collection::vec(statement(), 1..4).prop_map(|statements| {
        let statements: Vec<Value> = statements
            .into_iter()
            .enumerate()
            .map(|(i, mut statement)| {
                statement["Sid"] = json!(format!("S{i}"));
                statement
            })
            .collect();
        json!({"Version": "2012-10-17", "Statement": statements})
    })
}

/// Arbitrary JSON, policy-shaped keys included so that the comparison's branches are reached.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("Statement".to_owned()),
        Just("Principal".to_owned()),
        Just("NotPrincipal".to_owned()),
        Just("AWS".to_owned()),
        Just("Action".to_owned()),
        Just("Effect".to_owned()),
        Just("Condition".to_owned()),
        Just("Version".to_owned()),
        ".{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // quarters print and parse back exactly (serde_json's default float parsing is not exact)
        (-4000i32..4000).prop_map(|n| Value::from(f64::from(n) / 4.0)),
        "(\\*|arn:aws:iam::[0-9]{12}:root|[0-9]{12}|ecr:\\*|.{0,8})".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// The same grants, spelled differently at random.
fn respell(document: &Value, rng: &mut StdRng) -> Value {
    let mut document = document.clone();
    let statements = document["Statement"].as_array_mut().unwrap();
    statements.shuffle(rng);
    for statement in statements.iter_mut() {
        let object = statement.as_object_mut().unwrap();
        if rng.random_bool(0.5) {
            object.remove("Sid");
        } else {
            object.insert("Sid".into(), json!(format!("Other{}", rng.random_range(0..100))));
        }
        let actions = object["Action"].as_array_mut().unwrap();
        actions.shuffle(rng);
        for action in actions.iter_mut() {
            if rng.random_bool(0.3) {
                *action = json!(action.as_str().unwrap().to_ascii_uppercase());
            }
        }
        if actions.len() == 1 && rng.random_bool(0.5) {
            let single = actions[0].clone();
            object.insert("Action".into(), single);
        } else if rng.random_bool(0.3) {
            // a duplicate does not change the set
            let first = actions[0].clone();
            actions.push(first);
        }
        let aws = object["Principal"]["AWS"].as_array_mut().unwrap();
        aws.shuffle(rng);
        for principal in aws.iter_mut() {
            let text = principal.as_str().unwrap().to_owned();
            if let Some(id) = text.strip_prefix("arn:aws:iam::").and_then(|t| t.strip_suffix(":root"))
                && rng.random_bool(0.5)
            {
                *principal = json!(id);
            }
        }
        if let Some(orgs) = object
            .get_mut("Condition")
            .and_then(|c| c["StringEquals"]["aws:PrincipalOrgID"].as_array().cloned())
            && orgs.len() == 1
        {
            let key = if rng.random_bool(0.5) {
                "aws:PrincipalOrgID"
            } else {
                "aws:principalorgid"
            };
            object.insert("Condition".into(), json!({"StringEquals": {key: orgs[0].clone()}}));
        }
    }
    document
}

/// One real change, picked at random.
fn alter(document: &Value, rng: &mut StdRng) -> Value {
    let mut document = document.clone();
    let statements = document["Statement"].as_array_mut().unwrap();
    let index = rng.random_range(0..statements.len());
    let statement = statements[index].as_object_mut().unwrap();
    match rng.random_range(0..5) {
        0 => {
            let effect = if statement["Effect"] == "Allow" {
                "Deny"
            } else {
                "Allow"
            };
            statement.insert("Effect".into(), json!(effect));
        }
        1 => {
            let actions = statement["Action"].as_array_mut().unwrap();
            let missing = ACTIONS.iter().find(|a| !actions.contains(&json!(a)));
            match missing {
                Some(action) => actions.push(json!(action)),
                None => {
                    actions.pop();
                }
            }
        }
        2 => {
            statement["Principal"]["AWS"]
                .as_array_mut()
                .unwrap()
                .push(json!("arn:aws:iam::999999999999:role/intruder"));
        }
        3 => {
            let arn = statement["Principal"]["AWS"][0]
                .as_str()
                .unwrap()
                .replacen("arn:aws:iam::", "arn:aws:iam::9", 1);
            statement["Principal"]["AWS"][0] = json!(arn.replacen(":root", "0:root", 1));
        }
        _ => match statement.remove("Condition") {
            Some(_) => {}
            None => {
                statement.insert("Condition".into(), json!({"Bool": {"aws:SecureTransport": "true"}}));
            }
        },
    }
    document
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn respellings_compare_equal(document in document(), seed in any::<u64>()) {
        let respelled = respell(&document, &mut StdRng::seed_from_u64(seed));
        prop_assert!(equivalent(&document, &respelled), "{document}\n{respelled}");
        // whitespace, key order and IAM's URL encoding do not matter either
        let pretty = serde_json::to_string_pretty(&respelled).unwrap();
        let encoded = percent_encoding::utf8_percent_encode(&pretty, percent_encoding::NON_ALPHANUMERIC).to_string();
        prop_assert!(equivalent(&document, &parse_policy(&pretty).unwrap()));
        prop_assert!(equivalent(&document, &parse_policy(&encoded).unwrap()));
    }

    #[test]
    fn real_changes_compare_unequal(document in document(), seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let altered = alter(&document, &mut rng);
        let respelled = respell(&altered, &mut rng);
        prop_assert!(!equivalent(&document, &respelled), "{document}\n{respelled}");
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,64}", json in any_json()) {
        let _ = parse_policy(&text);
        // any JSON document parses back from its text, plain or URL-encoded
        let serialized = json.to_string();
        let encoded = percent_encoding::utf8_percent_encode(&serialized, percent_encoding::NON_ALPHANUMERIC).to_string();
        prop_assert_eq!(parse_policy(&serialized), Ok(json.clone()));
        prop_assert_eq!(parse_policy(&encoded), Ok(json));
    }

    #[test]
    fn comparison_is_deterministic_reflexive_and_symmetric(left in any_json(), right in any_json()) {
        prop_assert_eq!(canonical(&left), canonical(&left));
        prop_assert!(equivalent(&left, &left));
        prop_assert_eq!(equivalent(&left, &right), equivalent(&right, &left));
        let _ = crate::policy::public::public_reason(&left);
    }
}

#[test]
fn equivalent_spellings_of_everyone_and_scalars() {
    let star = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage", "Condition": {"Bool": {"aws:SecureTransport": true}}}});
    let spelled = json!({"Statement": [{"Principal": {"AWS": ["*"]}, "Effect": "Allow", "Action": ["ECR:batchgetimage"], "Condition": {"Bool": {"aws:securetransport": ["true"]}}}], "Version": "2012-10-17"});
    assert!(equivalent(&star, &spelled));
    let other_version = json!({"Version": "2008-10-17", "Statement": spelled["Statement"].clone()});
    assert!(!equivalent(&star, &other_version));
}

#[test]
fn unparsable_policies_are_reported() {
    assert!(parse_policy("{not json").unwrap_err().contains("not valid JSON"));
    assert!(parse_policy("%7Bbroken").is_err());
    assert_eq!(
        parse_policy("%7B%22Version%22%3A%222012-10-17%22%7D").unwrap(),
        json!({"Version": "2012-10-17"})
    );
}

#[test]
fn an_account_is_the_same_in_every_partition_and_spelling() {
    let grant = |principal: Value| json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "ecr:BatchGetImage"}]});
    let spellings = [
        json!("111122223333"),
        json!(["arn:aws:iam::111122223333:root"]),
        json!("arn:aws-cn:iam::111122223333:root"),
        json!(["arn:aws-us-gov:iam::111122223333:root"]),
    ];
    for left in &spellings {
        for right in &spellings {
            assert!(
                equivalent(&grant(left.clone()), &grant(right.clone())),
                "{left} {right}"
            );
        }
    }
    // another account, a role of the account, or a malformed root ARN is something else
    for other in [
        "111122223334",
        "arn:aws-cn:iam::111122223334:root",
        "arn:aws-cn:iam::111122223333:role/root",
        "arn::iam::111122223333:root",
        "arn:aws-cn:iam::11112222333:root",
    ] {
        assert!(
            !equivalent(&grant(spellings[2].clone()), &grant(json!(other))),
            "{other}"
        );
    }
}

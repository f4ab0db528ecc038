//! Status conditions: `Ready`, `ScanCompliant`, ... kept as a list-map keyed by `type`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub type Conditions = Vec<Condition>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// Builds the condition of `type_` for a new status, keeping the previous `lastTransitionTime`
/// unless the status flips, so that an unchanged object gets a byte-identical status.
pub fn set_condition(
    previous: &[Condition],
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status.as_str())
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    Condition {
        type_: type_.to_owned(),
        status: status.as_str().to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn keeps_transition_time_while_status_holds() {
        let first = set_condition(&[], "Ready", ConditionStatus::True, "Synced", "ok", Some(1), at(10));
        let again = set_condition(
            std::slice::from_ref(&first),
            "Ready",
            ConditionStatus::True,
            "Synced",
            "still ok",
            Some(2),
            at(20),
        );
        assert_eq!(again.last_transition_time, at(10));
        assert_eq!(again.message, "still ok");
        assert_eq!(again.observed_generation, Some(2));
    }

    #[test]
    fn moves_transition_time_when_status_flips() {
        let first = set_condition(&[], "Ready", ConditionStatus::True, "Synced", "ok", Some(1), at(10));
        let flipped = set_condition(
            &[first],
            "Ready",
            ConditionStatus::False,
            "InvalidSpec",
            "bad",
            Some(2),
            at(20),
        );
        assert_eq!(flipped.last_transition_time, at(20));
        assert_eq!(flipped.status, "False");
    }
}

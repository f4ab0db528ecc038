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

pub const READY: &str = "Ready";
/// kstatus: the controller cannot make progress until the spec (or its environment) changes.
pub const STALLED: &str = "Stalled";
/// kstatus: the controller is working toward the spec (here: retrying a transient failure).
pub const RECONCILING: &str = "Reconciling";

/// Where a reconcile left an object, as Flux, `kstatus` and `kubectl wait` read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// In sync: Ready=True, no Stalled, no Reconciling.
    Ready,
    /// A terminal failure: Ready=False and Stalled=True with the same reason.
    Stalled,
    /// A transient failure being retried: Ready=False and Reconciling=True.
    Retrying,
}

/// The Ready condition and, by `progress`, Stalled or Reconciling, each keeping its previous
/// `lastTransitionTime` while its status holds. The conditions a progress does not name are
/// left out, which server-side apply turns into their removal.
pub fn progress_conditions(
    previous: &[Condition],
    progress: Progress,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    let ready = if progress == Progress::Ready {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let mut conditions = vec![set_condition(
        previous,
        READY,
        ready,
        reason,
        message,
        observed_generation,
        now.clone(),
    )];
    let extra = match progress {
        Progress::Ready => None,
        Progress::Stalled => Some(STALLED),
        Progress::Retrying => Some(RECONCILING),
    };
    if let Some(type_) = extra {
        conditions.push(set_condition(
            previous,
            type_,
            ConditionStatus::True,
            reason,
            message,
            observed_generation,
            now,
        ));
    }
    conditions
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
    fn progress_sets_stalled_or_reconciling_beside_ready_and_clears_them_when_ready() {
        let stalled = progress_conditions(&[], Progress::Stalled, "InvalidSpec", "spec.tags", Some(1), at(10));
        let types: Vec<(&str, &str)> = stalled.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(types, [(READY, "False"), (STALLED, "True")]);
        assert!(stalled.iter().all(|c| c.reason == "InvalidSpec"));
        let retrying = progress_conditions(&stalled, Progress::Retrying, "AwsThrottled", "slow", Some(1), at(20));
        let types: Vec<(&str, &str)> = retrying.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(types, [(READY, "False"), (RECONCILING, "True")]);
        // Ready stayed False: its transition time holds
        assert_eq!(retrying[0].last_transition_time, at(10));
        let ready = progress_conditions(&retrying, Progress::Ready, "Synced", "ok", Some(2), at(30));
        assert_eq!(ready.len(), 1);
        assert_eq!(
            (ready[0].status.as_str(), ready[0].last_transition_time.clone()),
            ("True", at(30))
        );
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

//! Between the registry's scanning configuration as the ECR adapter reports it and berth's own
//! model of it (`crate::scan`), and the recorded form kept in a ScanPolicy's status. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{RecordedFrequency, RecordedScanRule, RecordedScanning, ScanFrequency, ScanType};
use crate::aws::{RegistryScanFrequency, RegistryScanRule, RegistryScanType, RegistryScanning};
use crate::scan::ScanningConfig;

/// berth's model of a configuration ECR reports. Manual rules scan nothing by themselves:
/// they are kept only in the recorded form, to be restored as found.
pub fn config_of(observed: &RegistryScanning) -> ScanningConfig {
    let mut rules: BTreeMap<ScanFrequency, BTreeSet<String>> = BTreeMap::new();
    for rule in &observed.rules {
        let frequency = match rule.frequency {
            RegistryScanFrequency::ScanOnPush => ScanFrequency::ScanOnPush,
            RegistryScanFrequency::ContinuousScan => ScanFrequency::ContinuousScan,
            RegistryScanFrequency::Manual => continue,
        };
        rules.entry(frequency).or_default().extend(rule.filters.iter().cloned());
    }
    ScanningConfig {
        scan_type: match observed.scan_type {
            RegistryScanType::Basic => ScanType::Basic,
            RegistryScanType::Enhanced => ScanType::Enhanced,
        },
        rules,
    }
}

/// What to send to ECR for `config`: every rule, in a stable order.
pub fn registry_scanning(config: &ScanningConfig) -> RegistryScanning {
    RegistryScanning {
        scan_type: match config.scan_type {
            ScanType::Basic => RegistryScanType::Basic,
            ScanType::Enhanced => RegistryScanType::Enhanced,
        },
        rules: config
            .rules
            .iter()
            .map(|(frequency, filters)| RegistryScanRule {
                frequency: match frequency {
                    ScanFrequency::ScanOnPush => RegistryScanFrequency::ScanOnPush,
                    ScanFrequency::ContinuousScan => RegistryScanFrequency::ContinuousScan,
                },
                filters: filters.iter().cloned().collect(),
            })
            .collect(),
    }
}

/// The configuration found before berth's first write, as the status keeps it.
pub fn recorded(observed: &RegistryScanning) -> RecordedScanning {
    RecordedScanning {
        scan_type: match observed.scan_type {
            RegistryScanType::Basic => ScanType::Basic,
            RegistryScanType::Enhanced => ScanType::Enhanced,
        },
        rules: observed
            .rules
            .iter()
            .map(|rule| RecordedScanRule {
                frequency: match rule.frequency {
                    RegistryScanFrequency::ScanOnPush => RecordedFrequency::ScanOnPush,
                    RegistryScanFrequency::ContinuousScan => RecordedFrequency::ContinuousScan,
                    RegistryScanFrequency::Manual => RecordedFrequency::Manual,
                },
                repository_filters: rule.filters.clone(),
            })
            .collect(),
    }
}

/// The recorded configuration, to put back exactly as it was.
pub fn restored(recorded: &RecordedScanning) -> RegistryScanning {
    RegistryScanning {
        scan_type: match recorded.scan_type {
            ScanType::Basic => RegistryScanType::Basic,
            ScanType::Enhanced => RegistryScanType::Enhanced,
        },
        rules: recorded
            .rules
            .iter()
            .map(|rule| RegistryScanRule {
                frequency: match rule.frequency {
                    RecordedFrequency::ScanOnPush => RegistryScanFrequency::ScanOnPush,
                    RecordedFrequency::ContinuousScan => RegistryScanFrequency::ContinuousScan,
                    RecordedFrequency::Manual => RegistryScanFrequency::Manual,
                },
                filters: rule.repository_filters.clone(),
            })
            .collect(),
    }
}

pub fn frequency_name(frequency: RegistryScanFrequency) -> &'static str {
    match frequency {
        RegistryScanFrequency::ScanOnPush => "ScanOnPush",
        RegistryScanFrequency::ContinuousScan => "ContinuousScan",
        RegistryScanFrequency::Manual => "Manual",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(frequency: RegistryScanFrequency, filters: &[&str]) -> RegistryScanRule {
        RegistryScanRule {
            frequency,
            filters: filters.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn a_configuration_survives_the_round_trip_through_the_record_exactly() {
        let found = RegistryScanning {
            scan_type: RegistryScanType::Basic,
            rules: vec![
                rule(RegistryScanFrequency::Manual, &["legacy/*"]),
                rule(RegistryScanFrequency::ScanOnPush, &["b", "a*"]),
            ],
        };
        assert_eq!(restored(&recorded(&found)), found);
    }

    #[test]
    fn berths_model_ignores_order_and_manual_rules() {
        let one = RegistryScanning {
            scan_type: RegistryScanType::Enhanced,
            rules: vec![
                rule(RegistryScanFrequency::ContinuousScan, &["x", "y"]),
                rule(RegistryScanFrequency::Manual, &["z"]),
            ],
        };
        let other = RegistryScanning {
            scan_type: RegistryScanType::Enhanced,
            rules: vec![rule(RegistryScanFrequency::ContinuousScan, &["y", "x"])],
        };
        assert_eq!(config_of(&one), config_of(&other));
        assert_eq!(config_of(&registry_scanning(&config_of(&one))), config_of(&one));
        let basic = RegistryScanning {
            scan_type: RegistryScanType::Basic,
            ..other.clone()
        };
        assert_ne!(config_of(&basic), config_of(&other));
    }
}

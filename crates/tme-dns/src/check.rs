//! `tme domain check`: what the public DNS says about a domain against what tme serves.
//!
//! This module owns the comparison, RRset by RRset (data compared in presentation format,
//! TTLs ignored, since a resolver counts them down), and the finding's wording, with the record
//! to set when something is missing or different. The queries themselves are `lookup`'s.

use hickory_proto::rr::{LowerName, Record, RecordType};
use serde::Serialize;

use crate::zone::{Zone, presentation, record_text, rrsets};

/// The state of one RRset in the public DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum CheckState {
    Ok,
    Missing,
    Different {
        found: Vec<String>,
    },
    /// The query failed (timeout, SERVFAIL): nothing can be said.
    Unknown {
        error: String,
    },
}

/// One RRset tme serves, and what the public DNS says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckFinding {
    pub name: String,
    pub record_type: String,
    #[serde(flatten)]
    pub state: CheckState,
    /// The records to set at the domain's DNS host, in zone-file syntax.
    pub expected: Vec<String>,
}

/// The RRsets to check: every RRset of the zone (its SOA aside, whose serial differs at
/// every change and which a registrar does not let anyone set).
pub fn expected_rrsets(zone: &Zone) -> Vec<(hickory_proto::rr::Name, RecordType, Vec<Record>)> {
    rrsets(zone.records())
        .into_values()
        .filter_map(|set| {
            let first = set.first()?;
            Some((
                first.name.clone(),
                first.record_type(),
                set.into_iter().cloned().collect(),
            ))
        })
        .collect()
}

/// Compares what tme serves for one RRset with what was found (`Err`: the query failed).
pub fn compare(expected: &[Record], found: Result<Vec<Record>, String>) -> CheckFinding {
    let first = &expected[0];
    let owner = LowerName::new(&first.name);
    let record_type = first.record_type();
    let normalise = |records: &[Record]| -> Vec<String> {
        let mut data: Vec<String> = records
            .iter()
            .filter(|record| {
                LowerName::new(&record.name) == owner && record.record_type() == record_type
            })
            .map(|record| presentation(&record.data).to_ascii_lowercase())
            .collect();
        data.sort();
        data.dedup();
        data
    };
    let state = match found {
        Err(error) => CheckState::Unknown { error },
        Ok(found) => {
            let found_data = normalise(&found);
            if found_data.is_empty() {
                CheckState::Missing
            } else if found_data == normalise(expected) {
                CheckState::Ok
            } else {
                CheckState::Different {
                    found: found
                        .iter()
                        .filter(|record| {
                            LowerName::new(&record.name) == owner
                                && record.record_type() == record_type
                        })
                        .map(record_text)
                        .collect(),
                }
            }
        }
    };
    CheckFinding {
        name: first.name.to_ascii(),
        record_type: record_type.to_string(),
        state,
        expected: expected.iter().map(record_text).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, MX};
    use hickory_proto::rr::{Name, RData};

    fn record(name: &str, data: RData) -> Record {
        Record::from_rdata(Name::from_ascii(name).unwrap(), 300, data)
    }

    #[test]
    fn rrsets_compare_by_data_not_ttl_or_order() {
        let expected = vec![
            record(
                "example.com.",
                RData::MX(MX::new(10, Name::from_ascii("a.example.").unwrap())),
            ),
            record(
                "example.com.",
                RData::MX(MX::new(20, Name::from_ascii("b.example.").unwrap())),
            ),
        ];
        let mut found = expected.clone();
        found.reverse();
        found[0].ttl = 17;
        assert_eq!(compare(&expected, Ok(found)).state, CheckState::Ok);
        assert_eq!(
            compare(&expected, Ok(Vec::new())).state,
            CheckState::Missing
        );
        let other = vec![record(
            "example.com.",
            RData::MX(MX::new(10, Name::from_ascii("a.example.").unwrap())),
        )];
        let finding = compare(&expected, Ok(other));
        assert_eq!(
            finding.state,
            CheckState::Different {
                found: vec!["example.com. 300 IN MX 10 a.example.".to_owned()]
            }
        );
        assert_eq!(finding.expected.len(), 2);
        let unrelated = vec![record("www.example.com.", RData::A(A::new(192, 0, 2, 1)))];
        assert_eq!(compare(&expected, Ok(unrelated)).state, CheckState::Missing);
        assert!(matches!(
            compare(&expected, Err("timeout".into())).state,
            CheckState::Unknown { .. }
        ));
    }
}

//! What the rules decide about a line, and how a report says it. The load's
//! SQL finds each case and records its [`ProblemCode`] with the references
//! the reason needs (the first line, the stored order or customer, the file
//! that stored it); the severity, whether it counts as a duplicate, and the
//! reason's text are decided here, once.

use std::fmt;

/// How a reported line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Not stored (a bad value, a later copy of a barcode, a conflicting order).
    Rejected,
    /// A repeat that changes nothing (an order again with the same customer).
    Ignored,
    /// Stored, but worth knowing about.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Rejected => "rejected",
            Severity::Ignored => "ignored",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a ledger row stands (`ingestions.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerStatus {
    /// A delivery holds the row and is loading the version.
    Loading,
    /// Loaded and committed: final.
    Loaded,
    /// Rejected as a whole, with its report: final.
    Rejected,
    /// The last attempt failed and will be retried.
    Failed,
}

impl LedgerStatus {
    pub const ALL: [LedgerStatus; 4] = [
        LedgerStatus::Loading,
        LedgerStatus::Loaded,
        LedgerStatus::Rejected,
        LedgerStatus::Failed,
    ];
    /// The statuses as the ledger stores them (and the API filters by them).
    pub const NAMES: [&'static str; 4] = [
        LedgerStatus::Loading.as_str(),
        LedgerStatus::Loaded.as_str(),
        LedgerStatus::Rejected.as_str(),
        LedgerStatus::Failed.as_str(),
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            LedgerStatus::Loading => "loading",
            LedgerStatus::Loaded => "loaded",
            LedgerStatus::Rejected => "rejected",
            LedgerStatus::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::str::FromStr for LedgerStatus {
    type Err = UnknownLedgerStatus;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name).ok_or_else(|| UnknownLedgerStatus(name.to_owned()))
    }
}

impl fmt::Display for LedgerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A ledger status the rules do not know: the table and this module disagree.
#[derive(Debug, thiserror::Error)]
#[error("ledger status {0:?} is not one the pipeline knows ({names})", names = LedgerStatus::NAMES.join(", "))]
pub struct UnknownLedgerStatus(pub String);

/// The cases a load reports, as its SQL records them (`problems.kind`) and
/// the report names them (`code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// The reader refused the row (its reason says why).
    Invalid,
    /// A later copy of a barcode in the same file.
    RepeatedBarcode,
    /// The barcode is stored and sold to another order.
    BarcodeSold,
    /// The barcode is stored, and this copy would sell nothing.
    BarcodeStored,
    /// An order repeated in the file with the same customer.
    RepeatedOrder,
    /// An order repeated in the file with another customer.
    ConflictingOrder,
    /// The order is stored with the same customer.
    OrderStored,
    /// The order is stored with another customer.
    OrderOwned,
    /// A new order without barcodes (yet).
    NoBarcodes,
    /// A barcode of an order not known yet.
    UnknownOrder,
}

impl ProblemCode {
    pub const ALL: [ProblemCode; 10] = [
        ProblemCode::Invalid,
        ProblemCode::RepeatedBarcode,
        ProblemCode::BarcodeSold,
        ProblemCode::BarcodeStored,
        ProblemCode::RepeatedOrder,
        ProblemCode::ConflictingOrder,
        ProblemCode::OrderStored,
        ProblemCode::OrderOwned,
        ProblemCode::NoBarcodes,
        ProblemCode::UnknownOrder,
    ];

    /// The code as the SQL writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::Invalid => "invalid",
            ProblemCode::RepeatedBarcode => "repeated_barcode",
            ProblemCode::BarcodeSold => "barcode_sold",
            ProblemCode::BarcodeStored => "barcode_stored",
            ProblemCode::RepeatedOrder => "repeated_order",
            ProblemCode::ConflictingOrder => "conflicting_order",
            ProblemCode::OrderStored => "order_stored",
            ProblemCode::OrderOwned => "order_owned",
            ProblemCode::NoBarcodes => "no_barcodes",
            ProblemCode::UnknownOrder => "unknown_order",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    pub fn severity(self) -> Severity {
        match self {
            ProblemCode::RepeatedOrder | ProblemCode::OrderStored => Severity::Ignored,
            ProblemCode::NoBarcodes | ProblemCode::UnknownOrder => Severity::Warning,
            ProblemCode::Invalid
            | ProblemCode::RepeatedBarcode
            | ProblemCode::BarcodeSold
            | ProblemCode::BarcodeStored
            | ProblemCode::ConflictingOrder
            | ProblemCode::OrderOwned => Severity::Rejected,
        }
    }

    /// Whether the line repeats a barcode or an order seen before (the
    /// report's `duplicates` count).
    pub fn is_duplicate(self) -> bool {
        !matches!(
            self,
            ProblemCode::Invalid | ProblemCode::NoBarcodes | ProblemCode::UnknownOrder
        )
    }

    /// The codes of a severity, for the SQL that counts or lists them.
    pub fn of_severity(severity: Severity) -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|c| c.severity() == severity)
            .map(Self::as_str)
            .collect()
    }

    /// The codes that count as duplicates.
    pub fn duplicates() -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|c| c.is_duplicate())
            .map(Self::as_str)
            .collect()
    }
}

/// What loading one file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadCounts {
    /// Data lines read (valid or not).
    pub rows_read: u64,
    /// Rows that added or changed a stored order or barcode.
    pub accepted: u64,
    /// Rows rejected: invalid values, duplicate barcodes, conflicting orders.
    pub rejected: u64,
    /// Rows repeating a barcode or order seen before (a subset of rejected
    /// for barcodes; same-customer order repeats are ignored, not rejected).
    pub duplicates: u64,
    /// Accepted rows worth knowing about: barcodes of orders not known yet,
    /// and ignored header columns.
    pub warnings: u64,
    /// New orders stored without barcodes (yet). The usual order of files
    /// (orders, then their barcodes) makes every order one, so they are a
    /// figure, not warnings line by line: the report names the first ones,
    /// and the Problems view lists those still without barcodes.
    pub orders_without_barcodes: u64,
}

/// How many orders without barcodes a report names (the count covers all).
pub const FIRST_ORDERS_WITHOUT_BARCODES: usize = 10;

/// An order named by its line in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OrderAtLine {
    pub line: u64,
    pub order_id: i64,
}

/// Where a stored row came from, for a reason that points at it: the key
/// of the file that stored it (unknown for rows older than the ledger) and
/// its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAt {
    pub file: Option<String>,
    pub line: Option<u64>,
}

impl fmt::Display for StoredAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file.as_deref().unwrap_or("an earlier file"))?;
        match self.line {
            Some(line) => write!(f, " line {line}"),
            None => Ok(()),
        }
    }
}

/// One case with what its reason names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    Invalid {
        reason: String,
    },
    RepeatedBarcode {
        first_line: u64,
    },
    BarcodeSold {
        order_id: i64,
        stored: StoredAt,
    },
    BarcodeStored {
        stored: StoredAt,
    },
    RepeatedOrder {
        order_id: i64,
        first_line: u64,
    },
    ConflictingOrder {
        order_id: i64,
        first_customer: i64,
        first_line: u64,
    },
    OrderStored {
        order_id: i64,
        stored: StoredAt,
    },
    OrderOwned {
        order_id: i64,
        customer_id: i64,
        stored: StoredAt,
    },
    NoBarcodes,
    UnknownOrder {
        order_id: i64,
    },
}

impl ProblemKind {
    pub fn code(&self) -> ProblemCode {
        match self {
            ProblemKind::Invalid { .. } => ProblemCode::Invalid,
            ProblemKind::RepeatedBarcode { .. } => ProblemCode::RepeatedBarcode,
            ProblemKind::BarcodeSold { .. } => ProblemCode::BarcodeSold,
            ProblemKind::BarcodeStored { .. } => ProblemCode::BarcodeStored,
            ProblemKind::RepeatedOrder { .. } => ProblemCode::RepeatedOrder,
            ProblemKind::ConflictingOrder { .. } => ProblemCode::ConflictingOrder,
            ProblemKind::OrderStored { .. } => ProblemCode::OrderStored,
            ProblemKind::OrderOwned { .. } => ProblemCode::OrderOwned,
            ProblemKind::NoBarcodes => ProblemCode::NoBarcodes,
            ProblemKind::UnknownOrder { .. } => ProblemCode::UnknownOrder,
        }
    }

    pub fn severity(&self) -> Severity {
        self.code().severity()
    }

    /// What the report and the rejects file say about the line.
    pub fn reason(&self) -> String {
        match self {
            ProblemKind::Invalid { reason } => reason.clone(),
            ProblemKind::RepeatedBarcode { first_line } => format!(
                "duplicate barcode: first seen on line {first_line}; the first occurrence wins"
            ),
            ProblemKind::BarcodeSold { order_id, stored } => format!(
                "barcode already sold to order {order_id} ({stored}); a sold barcode never moves"
            ),
            ProblemKind::BarcodeStored { stored } => format!(
                "duplicate barcode: already stored from {stored}; the first occurrence wins"
            ),
            ProblemKind::RepeatedOrder {
                order_id,
                first_line,
            } => format!("order {order_id} repeats line {first_line} with the same customer; ignored"),
            ProblemKind::ConflictingOrder {
                order_id,
                first_customer,
                first_line,
            } => format!(
                "order {order_id} already belongs to customer {first_customer} (line {first_line}); \
                 a conflicting customer is rejected"
            ),
            ProblemKind::OrderStored { order_id, stored } => {
                format!("order {order_id} is already stored ({stored}); ignored")
            }
            ProblemKind::OrderOwned {
                order_id,
                customer_id,
                stored,
            } => format!(
                "order {order_id} already belongs to customer {customer_id} ({stored}); \
                 history is never rewritten"
            ),
            ProblemKind::NoBarcodes => "order has no barcodes (yet): stored, but left out of \
                                        processed_orders.csv and ticket counts"
                .to_owned(),
            ProblemKind::UnknownOrder { order_id } => format!(
                "order {order_id} is not known yet; the barcode is stored and counts once the \
                 order arrives"
            ),
        }
    }
}

/// What the SQL recorded for a line besides its field and value: the code
/// and the references its reason needs.
#[derive(Debug, Clone, Default)]
pub struct RecordedProblem {
    pub code: String,
    pub order_id: Option<i64>,
    /// The first line in the file, or the stored row's line.
    pub other_line: Option<i64>,
    /// The first or stored customer, or the stored order.
    pub other_id: Option<i64>,
    /// The key of the file that stored the row.
    pub other_file: Option<String>,
    /// The reader's reason for an invalid row.
    pub detail: Option<String>,
}

/// A recorded problem whose code is unknown or whose references are
/// missing: the SQL and this module disagree.
#[derive(Debug, thiserror::Error)]
#[error("problem code {code:?} with references {references} is not one the rules know")]
pub struct UnknownProblem {
    pub code: String,
    pub references: String,
}

impl TryFrom<RecordedProblem> for ProblemKind {
    type Error = UnknownProblem;

    fn try_from(recorded: RecordedProblem) -> Result<Self, Self::Error> {
        let unknown = || UnknownProblem {
            code: recorded.code.clone(),
            references: format!("{recorded:?}"),
        };
        let code = ProblemCode::parse(&recorded.code).ok_or_else(unknown)?;
        let order_id = || recorded.order_id.ok_or_else(unknown);
        let line = || recorded.other_line.map(|l| l as u64).ok_or_else(unknown);
        let other_id = || recorded.other_id.ok_or_else(unknown);
        // Rows older than the ledger's provenance have no line.
        let stored = || StoredAt {
            file: recorded.other_file.clone(),
            line: recorded.other_line.map(|l| l as u64),
        };
        Ok(match code {
            ProblemCode::Invalid => ProblemKind::Invalid {
                reason: recorded.detail.clone().unwrap_or_default(),
            },
            ProblemCode::RepeatedBarcode => ProblemKind::RepeatedBarcode {
                first_line: line()?,
            },
            ProblemCode::BarcodeSold => ProblemKind::BarcodeSold {
                order_id: other_id()?,
                stored: stored(),
            },
            ProblemCode::BarcodeStored => ProblemKind::BarcodeStored { stored: stored() },
            ProblemCode::RepeatedOrder => ProblemKind::RepeatedOrder {
                order_id: order_id()?,
                first_line: line()?,
            },
            ProblemCode::ConflictingOrder => ProblemKind::ConflictingOrder {
                order_id: order_id()?,
                first_customer: other_id()?,
                first_line: line()?,
            },
            ProblemCode::OrderStored => ProblemKind::OrderStored {
                order_id: order_id()?,
                stored: stored(),
            },
            ProblemCode::OrderOwned => ProblemKind::OrderOwned {
                order_id: order_id()?,
                customer_id: other_id()?,
                stored: stored(),
            },
            ProblemCode::NoBarcodes => ProblemKind::NoBarcodes,
            ProblemCode::UnknownOrder => ProblemKind::UnknownOrder {
                order_id: order_id()?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ledger_status_reads_back_as_itself() {
        for status in LedgerStatus::ALL {
            assert_eq!(LedgerStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(LedgerStatus::parse("done"), None);
    }

    #[test]
    fn the_api_names_each_ledger_status_as_the_ledger_stores_it() {
        for status in LedgerStatus::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn every_code_reads_back_as_itself() {
        for code in ProblemCode::ALL {
            assert_eq!(ProblemCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ProblemCode::parse("rejected"), None);
    }

    #[test]
    fn a_report_names_each_code_as_the_sql_writes_it() {
        for code in ProblemCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn repeats_are_duplicates_and_only_same_customer_orders_are_ignored() {
        assert_eq!(
            ProblemCode::of_severity(Severity::Ignored),
            ["repeated_order", "order_stored"]
        );
        assert_eq!(
            ProblemCode::of_severity(Severity::Warning),
            ["no_barcodes", "unknown_order"]
        );
        assert!(!ProblemCode::duplicates().contains(&"invalid"));
        assert_eq!(ProblemCode::duplicates().len(), 7);
    }

    #[test]
    fn reasons_name_their_references() {
        let stored = StoredAt {
            file: Some("incoming/a.csv".into()),
            line: Some(7),
        };
        assert_eq!(
            ProblemKind::BarcodeSold {
                order_id: 3,
                stored: stored.clone()
            }
            .reason(),
            "barcode already sold to order 3 (incoming/a.csv line 7); a sold barcode never moves"
        );
        assert_eq!(
            ProblemKind::OrderStored {
                order_id: 1,
                stored: StoredAt {
                    file: None,
                    line: Some(2)
                }
            }
            .reason(),
            "order 1 is already stored (an earlier file line 2); ignored"
        );
        assert_eq!(
            ProblemKind::ConflictingOrder {
                order_id: 1,
                first_customer: 10,
                first_line: 2
            }
            .reason(),
            "order 1 already belongs to customer 10 (line 2); a conflicting customer is rejected"
        );
    }

    #[test]
    fn a_recorded_problem_without_its_references_is_refused() {
        let recorded = RecordedProblem {
            code: "order_owned".into(),
            other_line: Some(4),
            ..RecordedProblem::default()
        };
        assert!(ProblemKind::try_from(recorded).is_err());
        let unknown = RecordedProblem {
            code: "sold_twice".into(),
            ..RecordedProblem::default()
        };
        assert!(ProblemKind::try_from(unknown).is_err());
    }
}

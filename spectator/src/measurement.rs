//! What a poll produces: an id, how the aggregator combines it, and a value.

use crate::id::Id;

/// How the Atlas aggregator combines values for the same series within a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Op {
    /// Summed: counts, totals, percentile bucket counts. Sent as `0`.
    Add = 0,
    /// Largest wins: gauges and maxima. Sent as `10`.
    Max = 10,
}

impl Op {
    /// The op that goes with a `statistic` tag value, as the Spectator clients decide it:
    /// `count`, `totalAmount`, `totalTime`, `totalOfSquares` and `percentile` are
    /// [`Op::Add`]; anything else (including no statistic) is [`Op::Max`].
    ///
    /// ```
    /// use spectator::Op;
    /// assert_eq!(Op::from_statistic(Some("count")), Op::Add);
    /// assert_eq!(Op::from_statistic(Some("gauge")), Op::Max);
    /// ```
    pub fn from_statistic(statistic: Option<&str>) -> Op {
        match statistic {
            Some("count" | "totalAmount" | "totalTime" | "totalOfSquares" | "percentile") => {
                Op::Add
            }
            _ => Op::Max,
        }
    }

    /// The number sent on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// One value of one series, taken at a poll.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// The series, including its `statistic` tag.
    pub id: Id,
    /// How the aggregator combines it.
    pub op: Op,
    /// The value: a delta since the previous poll for [`Op::Add`], a level for [`Op::Max`].
    /// Always finite, but for one case: the poll after a gauge was set to NaN reports NaN
    /// once, so that the spectatord output can tell spectatord to stop reporting it (the
    /// Atlas output leaves it out: Atlas has no use for it).
    pub value: f64,
}

impl Measurement {
    /// A measurement whose op follows the id's `statistic` tag.
    pub fn new(id: Id, value: f64) -> Measurement {
        let op = Op::from_statistic(id.tag("statistic"));
        Measurement { id, op, value }
    }
}
